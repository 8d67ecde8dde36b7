# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_sysclone_global_optspecs
    string join \n q/quiet v/verbose progress= h/help V/version
end

function __fish_sysclone_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_sysclone_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_sysclone_using_subcommand
    set -l cmd (__fish_sysclone_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c sysclone -n "__fish_sysclone_needs_command" -l progress -d 'How to show progress: a live bar, plain lines, JSON events (on standard error), or none' -r -f -a "auto\t'A bar on a terminal, plain lines otherwise'
bar\t''
plain\t''
json\t''
none\t''"
complete -c sysclone -n "__fish_sysclone_needs_command" -s q -l quiet -d 'Quieter: no progress and no detail lines (messages, results and errors stay)'
complete -c sysclone -n "__fish_sysclone_needs_command" -s v -l verbose -d 'More detail (boot list: device paths, like efibootmgr -v)'
complete -c sysclone -n "__fish_sysclone_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sysclone -n "__fish_sysclone_needs_command" -s V -l version -d 'Print version'
complete -c sysclone -n "__fish_sysclone_needs_command" -f -a "disks" -d 'List disks, their partitions and roles'
complete -c sysclone -n "__fish_sysclone_needs_command" -f -a "clone" -d 'Clone one disk onto another (every byte, or used blocks only)'
complete -c sysclone -n "__fish_sysclone_needs_command" -f -a "migrate" -d 'Move chosen partitions onto a smaller or larger disk, resized'
complete -c sysclone -n "__fish_sysclone_needs_command" -f -a "save" -d 'Save a disk\'s used blocks into an image directory (compressed, checksummed)'
complete -c sysclone -n "__fish_sysclone_needs_command" -f -a "restore" -d 'Write an image directory back onto a disk of at least the saved disk\'s size'
complete -c sysclone -n "__fish_sysclone_needs_command" -f -a "boot" -d 'UEFI boot entries (list, create, delete, order, next, timeout, active/inactive)'
complete -c sysclone -n "__fish_sysclone_needs_command" -f -a "image" -d 'Boot media (build, write) and saved disk images (verify, info, export)'
complete -c sysclone -n "__fish_sysclone_needs_command" -f -a "job" -d 'Job files'
complete -c sysclone -n "__fish_sysclone_needs_command" -f -a "offline" -d 'Offline jobs (staged with clone/migrate/save --offline): cancel one before it runs'
complete -c sysclone -n "__fish_sysclone_needs_command" -f -a "status" -d 'The offline job staged for the next boot, and the last offline run\'s report'
complete -c sysclone -n "__fish_sysclone_needs_command" -f -a "gen-docs" -d 'Write the man pages and shell completions (for packagers; see scripts/gen-docs)'
complete -c sysclone -n "__fish_sysclone_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sysclone -n "__fish_sysclone_using_subcommand disks" -l progress -d 'How to show progress: a live bar, plain lines, JSON events (on standard error), or none' -r -f -a "auto\t'A bar on a terminal, plain lines otherwise'
bar\t''
plain\t''
json\t''
none\t''"
complete -c sysclone -n "__fish_sysclone_using_subcommand disks" -l json -d 'Print JSON instead of a table'
complete -c sysclone -n "__fish_sysclone_using_subcommand disks" -l rescan -d 'Rescue image: first load drivers for devices plugged in since boot and wait for their disks'
complete -c sysclone -n "__fish_sysclone_using_subcommand disks" -s q -l quiet -d 'Quieter: no progress and no detail lines (messages, results and errors stay)'
complete -c sysclone -n "__fish_sysclone_using_subcommand disks" -s v -l verbose -d 'More detail (boot list: device paths, like efibootmgr -v)'
complete -c sysclone -n "__fish_sysclone_using_subcommand disks" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sysclone -n "__fish_sysclone_using_subcommand clone" -l source -d 'Source disk: selector (serial=…, model=…, bus=…) or device path' -r
complete -c sysclone -n "__fish_sysclone_using_subcommand clone" -l target -d 'Target disk: selector or device path; everything on it is overwritten. Repeat for a duplicator: every target written at once, the source read once' -r
complete -c sysclone -n "__fish_sysclone_using_subcommand clone" -l mode -d 'Copy mode' -r -f -a "exact\t'Every byte'
smart\t'Partition table, boot areas, and only the blocks each filesystem uses'"
complete -c sysclone -n "__fish_sysclone_using_subcommand clone" -l protect -d 'Disks never to write (selector; repeatable)' -r
complete -c sysclone -n "__fish_sysclone_using_subcommand clone" -l boot-policy -d 'Boot entries for the target after the copy [default: first; none with several targets]' -r -f -a "first\t'Entries for the target, first in BootOrder'
next\t'Entries for the target, BootNext only: boot the clone once, BootOrder stays'
add\t'Entries for the target, BootOrder unchanged'
none\t'Change no EFI variable'"
complete -c sysclone -n "__fish_sysclone_using_subcommand clone" -l efivars -d 'efivarfs directory' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand clone" -l map -d 'Keep a ddrescue-format map here; if it exists, resume the clone it describes' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand clone" -l kernel -d 'With --offline: the rescue kernel [default: /boot/vmlinuz-RELEASE of the running kernel]' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand clone" -l modules -d 'With --offline: that kernel\'s modules [default: /lib/modules/RELEASE]' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand clone" -l initramfs -d 'With --offline: stage this initramfs (from `sysclone image build`) instead of building one from the kernel\'s modules' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand clone" -l esp -d 'With --offline: the ESP to stage on, by PARTUUID [default: the one the firmware booted this system from]' -r
complete -c sysclone -n "__fish_sysclone_using_subcommand clone" -l progress -d 'How to show progress: a live bar, plain lines, JSON events (on standard error), or none' -r -f -a "auto\t'A bar on a terminal, plain lines otherwise'
bar\t''
plain\t''
json\t''
none\t''"
complete -c sysclone -n "__fish_sysclone_using_subcommand clone" -l prune-stale -d 'Also delete boot entries whose partition is on no attached disk'
complete -c sysclone -n "__fish_sysclone_using_subcommand clone" -l verify -d 'Read the target back and compare with what was written'
complete -c sysclone -n "__fish_sysclone_using_subcommand clone" -l discard-unused -d 'After a smart clone, TRIM the target\'s space that was not written'
complete -c sysclone -n "__fish_sysclone_using_subcommand clone" -l dry-run -d 'Show the plan, write nothing'
complete -c sysclone -n "__fish_sysclone_using_subcommand clone" -s y -l yes -d 'Do not ask for the typed confirmation (the write guard still applies)'
complete -c sysclone -n "__fish_sysclone_using_subcommand clone" -l json -d 'Print the report as JSON on standard output'
complete -c sysclone -n "__fish_sysclone_using_subcommand clone" -l offline -d 'Run it offline: stage the job and a rescue image on this system\'s ESP, start it once at the next boot (BootNext), come back afterwards (see docs/offline.md)'
complete -c sysclone -n "__fish_sysclone_using_subcommand clone" -l reboot -d 'With --offline: reboot as soon as the job is staged'
complete -c sysclone -n "__fish_sysclone_using_subcommand clone" -s q -l quiet -d 'Quieter: no progress and no detail lines (messages, results and errors stay)'
complete -c sysclone -n "__fish_sysclone_using_subcommand clone" -s v -l verbose -d 'More detail (boot list: device paths, like efibootmgr -v)'
complete -c sysclone -n "__fish_sysclone_using_subcommand clone" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sysclone -n "__fish_sysclone_using_subcommand migrate" -l source -d 'Source disk: selector or device path' -r
complete -c sysclone -n "__fish_sysclone_using_subcommand migrate" -l target -d 'Target disk: selector or device path; everything on it is overwritten' -r
complete -c sysclone -n "__fish_sysclone_using_subcommand migrate" -l policy -d 'How partitions are sized on the target' -r -f -a "keep\t'Same offsets and sizes'
grow\t'One partition (--grow-part, or the last data partition) takes the difference'
proportional\t'Every resizable partition scaled by target/source size'
explicit\t'Sizes given with --size N=SIZE; others keep theirs'"
complete -c sysclone -n "__fish_sysclone_using_subcommand migrate" -l grow-part -d 'With --policy grow: the partition number that takes the difference' -r
complete -c sysclone -n "__fish_sysclone_using_subcommand migrate" -l size -d 'With --policy explicit: partition size, e.g. 2=20G (repeatable)' -r
complete -c sysclone -n "__fish_sysclone_using_subcommand migrate" -l only -d 'Only these partitions of the source (comma-separated numbers)' -r
complete -c sysclone -n "__fish_sysclone_using_subcommand migrate" -l exclude -d 'Leave out these source partitions (comma-separated numbers)' -r
complete -c sysclone -n "__fish_sysclone_using_subcommand migrate" -l boot-policy -d 'Boot entries for the target' -r -f -a "first\t'Entries for the target, first in BootOrder'
next\t'Entries for the target, BootNext only: boot the clone once, BootOrder stays'
add\t'Entries for the target, BootOrder unchanged'
none\t'Change no EFI variable'"
complete -c sysclone -n "__fish_sysclone_using_subcommand migrate" -l efivars -d 'efivarfs directory' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand migrate" -l kernel -d 'With --offline: the rescue kernel [default: /boot/vmlinuz-RELEASE of the running kernel]' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand migrate" -l modules -d 'With --offline: that kernel\'s modules [default: /lib/modules/RELEASE]' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand migrate" -l initramfs -d 'With --offline: stage this initramfs (from `sysclone image build`) instead of building one from the kernel\'s modules' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand migrate" -l esp -d 'With --offline: the ESP to stage on, by PARTUUID [default: the one the firmware booted this system from]' -r
complete -c sysclone -n "__fish_sysclone_using_subcommand migrate" -l progress -d 'How to show progress: a live bar, plain lines, JSON events (on standard error), or none' -r -f -a "auto\t'A bar on a terminal, plain lines otherwise'
bar\t''
plain\t''
json\t''
none\t''"
complete -c sysclone -n "__fish_sysclone_using_subcommand migrate" -l new-identities -d 'New disk and partition GUIDs (both disks stay in one machine)'
complete -c sysclone -n "__fish_sysclone_using_subcommand migrate" -l dry-run -d 'Show the plan, write nothing'
complete -c sysclone -n "__fish_sysclone_using_subcommand migrate" -s y -l yes -d 'Do not ask for the typed confirmation (the write guard still applies)'
complete -c sysclone -n "__fish_sysclone_using_subcommand migrate" -l json -d 'Print the report as JSON on standard output'
complete -c sysclone -n "__fish_sysclone_using_subcommand migrate" -l offline -d 'Run it offline: stage the job and a rescue image on this system\'s ESP, start it once at the next boot (BootNext), come back afterwards (see docs/offline.md)'
complete -c sysclone -n "__fish_sysclone_using_subcommand migrate" -l reboot -d 'With --offline: reboot as soon as the job is staged'
complete -c sysclone -n "__fish_sysclone_using_subcommand migrate" -s q -l quiet -d 'Quieter: no progress and no detail lines (messages, results and errors stay)'
complete -c sysclone -n "__fish_sysclone_using_subcommand migrate" -s v -l verbose -d 'More detail (boot list: device paths, like efibootmgr -v)'
complete -c sysclone -n "__fish_sysclone_using_subcommand migrate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sysclone -n "__fish_sysclone_using_subcommand save" -l source -d 'Disk to save: selector (serial=…, model=…) or device path; only read' -r
complete -c sysclone -n "__fish_sysclone_using_subcommand save" -l to -d 'Image directory to create (must not hold an image yet)' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand save" -l partitions -d 'Only these partitions (comma-separated numbers); the table and boot area always' -r
complete -c sysclone -n "__fish_sysclone_using_subcommand save" -l level -d 'zstd level (1-19)' -r
complete -c sysclone -n "__fish_sysclone_using_subcommand save" -l split-size -d 'Largest data file (e.g. 700M); the default stays under FAT32\'s 4 GiB file limit' -r
complete -c sysclone -n "__fish_sysclone_using_subcommand save" -l base -d 'An earlier image of this disk: chunks it holds are referenced, not stored again (it must stay where it is, relative to the new image, to restore the new one)' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand save" -l chunk-size -d 'Largest chunk (4K to 64M; default 4M, or the base image\'s): chunks are cut on a fixed grid of this size, so smaller chunks make later incremental images smaller' -r
complete -c sysclone -n "__fish_sysclone_using_subcommand save" -l sign -d 'Sign the manifest with this minisign secret key afterwards (runs `minisign -S`, which asks for the key\'s password; writes manifest.json.minisig)' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand save" -l efivars -d 'efivarfs directory (with --offline)' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand save" -l kernel -d 'With --offline: the rescue kernel [default: /boot/vmlinuz-RELEASE of the running kernel]' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand save" -l modules -d 'With --offline: that kernel\'s modules [default: /lib/modules/RELEASE]' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand save" -l initramfs -d 'With --offline: stage this initramfs (from `sysclone image build`) instead of building one from the kernel\'s modules' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand save" -l esp -d 'With --offline: the ESP to stage on, by PARTUUID [default: the one the firmware booted this system from]' -r
complete -c sysclone -n "__fish_sysclone_using_subcommand save" -l progress -d 'How to show progress: a live bar, plain lines, JSON events (on standard error), or none' -r -f -a "auto\t'A bar on a terminal, plain lines otherwise'
bar\t''
plain\t''
json\t''
none\t''"
complete -c sysclone -n "__fish_sysclone_using_subcommand save" -l dry-run -d 'Show the plan, write nothing'
complete -c sysclone -n "__fish_sysclone_using_subcommand save" -l json -d 'Print the report as JSON on standard output'
complete -c sysclone -n "__fish_sysclone_using_subcommand save" -l offline -d 'Run it offline: stage the job and a rescue image on this system\'s ESP, start it once at the next boot (BootNext), come back afterwards (see docs/offline.md)'
complete -c sysclone -n "__fish_sysclone_using_subcommand save" -l reboot -d 'With --offline: reboot as soon as the job is staged'
complete -c sysclone -n "__fish_sysclone_using_subcommand save" -s q -l quiet -d 'Quieter: no progress and no detail lines (messages, results and errors stay)'
complete -c sysclone -n "__fish_sysclone_using_subcommand save" -s v -l verbose -d 'More detail (boot list: device paths, like efibootmgr -v)'
complete -c sysclone -n "__fish_sysclone_using_subcommand save" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sysclone -n "__fish_sysclone_using_subcommand restore" -l from -d 'Image made by `sysclone save`: a directory or an http(s):// URL' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand restore" -l target -d 'Target disk: selector or device path; everything on it is overwritten' -r
complete -c sysclone -n "__fish_sysclone_using_subcommand restore" -l protect -d 'Disks never to write (selector; repeatable)' -r
complete -c sysclone -n "__fish_sysclone_using_subcommand restore" -l policy -d 'Layout on the target: exact (as saved), or through the migration planner like `migrate` (keep, grow, proportional, explicit). Default: exact when the target holds the image, else grow' -r -f -a "exact\t'Byte for byte as saved (the target must hold every partition)'
keep\t'Same offsets and sizes, through the planner'
grow\t'One partition (--grow-part, or the last data partition) takes the difference'
proportional\t'Every resizable partition scaled by target/image disk size'
explicit\t'Sizes given with --size N=SIZE; others keep theirs'"
complete -c sysclone -n "__fish_sysclone_using_subcommand restore" -l grow-part -d 'With --policy grow: the partition number that takes the difference' -r
complete -c sysclone -n "__fish_sysclone_using_subcommand restore" -l size -d 'With --policy explicit: partition size, e.g. 2=20G (repeatable)' -r
complete -c sysclone -n "__fish_sysclone_using_subcommand restore" -l only -d 'Only these partitions of the source (comma-separated numbers)' -r
complete -c sysclone -n "__fish_sysclone_using_subcommand restore" -l boot-policy -d 'Boot entries for the target (EFI post-clone policy)' -r -f -a "first\t'Entries for the target, first in BootOrder'
next\t'Entries for the target, BootNext only: boot the clone once, BootOrder stays'
add\t'Entries for the target, BootOrder unchanged'
none\t'Change no EFI variable'"
complete -c sysclone -n "__fish_sysclone_using_subcommand restore" -l efivars -d 'efivarfs directory' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand restore" -l trust -d 'A minisign public key to trust (repeatable). Then a job file must carry a good signature by one of them (FILE.minisig), and an image\'s manifest too (manifest.json.minisig) unless a job pins it (image.sha256)' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand restore" -l progress -d 'How to show progress: a live bar, plain lines, JSON events (on standard error), or none' -r -f -a "auto\t'A bar on a terminal, plain lines otherwise'
bar\t''
plain\t''
json\t''
none\t''"
complete -c sysclone -n "__fish_sysclone_using_subcommand restore" -l verify -d 'Read the target back afterwards and compare with the image\'s hashes (through the planner: the partitions that were not resized)'
complete -c sysclone -n "__fish_sysclone_using_subcommand restore" -l delta -d 'Fetch and write only what the target does not already hold (re-imaging a disk that drifted a little; exact restores)'
complete -c sysclone -n "__fish_sysclone_using_subcommand restore" -l rescue -d 'Go on past image chunks that are missing or damaged: their places on the target are zeroed and listed (exit status 5); without it the first one stops the restore'
complete -c sysclone -n "__fish_sysclone_using_subcommand restore" -l dry-run -d 'Show the plan, write nothing'
complete -c sysclone -n "__fish_sysclone_using_subcommand restore" -s y -l yes -d 'Do not ask for the typed confirmation (the write guard still applies)'
complete -c sysclone -n "__fish_sysclone_using_subcommand restore" -l json -d 'Print the report as JSON on standard output'
complete -c sysclone -n "__fish_sysclone_using_subcommand restore" -s q -l quiet -d 'Quieter: no progress and no detail lines (messages, results and errors stay)'
complete -c sysclone -n "__fish_sysclone_using_subcommand restore" -s v -l verbose -d 'More detail (boot list: device paths, like efibootmgr -v)'
complete -c sysclone -n "__fish_sysclone_using_subcommand restore" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and not __fish_seen_subcommand_from list create delete order next timeout active inactive help" -l progress -d 'How to show progress: a live bar, plain lines, JSON events (on standard error), or none' -r -f -a "auto\t'A bar on a terminal, plain lines otherwise'
bar\t''
plain\t''
json\t''
none\t''"
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and not __fish_seen_subcommand_from list create delete order next timeout active inactive help" -s q -l quiet -d 'Quieter: no progress and no detail lines (messages, results and errors stay)'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and not __fish_seen_subcommand_from list create delete order next timeout active inactive help" -s v -l verbose -d 'More detail (boot list: device paths, like efibootmgr -v)'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and not __fish_seen_subcommand_from list create delete order next timeout active inactive help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and not __fish_seen_subcommand_from list create delete order next timeout active inactive help" -f -a "list" -d 'List BootCurrent, BootNext, Timeout, BootOrder and every Boot#### (like efibootmgr)'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and not __fish_seen_subcommand_from list create delete order next timeout active inactive help" -f -a "create" -d 'Create a boot entry HD(partition)/File(loader); an identical entry is reused'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and not __fish_seen_subcommand_from list create delete order next timeout active inactive help" -f -a "delete" -d 'Delete a Boot#### entry (and remove it from BootOrder and BootNext)'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and not __fish_seen_subcommand_from list create delete order next timeout active inactive help" -f -a "order" -d 'Show or set BootOrder, e.g. `order 0003,0001,0000`'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and not __fish_seen_subcommand_from list create delete order next timeout active inactive help" -f -a "next" -d 'Set BootNext (boot this entry once), or clear it'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and not __fish_seen_subcommand_from list create delete order next timeout active inactive help" -f -a "timeout" -d 'Set the firmware\'s boot menu Timeout in seconds, or clear it'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and not __fish_seen_subcommand_from list create delete order next timeout active inactive help" -f -a "active" -d 'Mark an entry active (the firmware boots it)'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and not __fish_seen_subcommand_from list create delete order next timeout active inactive help" -f -a "inactive" -d 'Mark an entry inactive (kept, but skipped by the firmware)'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and not __fish_seen_subcommand_from list create delete order next timeout active inactive help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from list" -l efivars -d 'efivarfs directory' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from list" -l progress -d 'How to show progress: a live bar, plain lines, JSON events (on standard error), or none' -r -f -a "auto\t'A bar on a terminal, plain lines otherwise'
bar\t''
plain\t''
json\t''
none\t''"
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from list" -l json -d 'Print JSON'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Quieter: no progress and no detail lines (messages, results and errors stay)'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from list" -s v -l verbose -d 'More detail (boot list: device paths, like efibootmgr -v)'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from create" -l disk -d 'Disk holding the loader: selector (serial=…, model=…) or device path' -r
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from create" -l part -d 'Partition number (the ESP)' -r
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from create" -l loader -d 'Loader path on that partition, e.g. \'\\EFI\\debian\\shimx64.efi\' (/ works too)' -r
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from create" -l label -d 'Description shown by the firmware\'s boot menu' -r
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from create" -l args -d 'Arguments for the loader, stored as UCS-2 optional data (kernel command line, …)' -r
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from create" -l data-hex -d 'Raw optional data, hex' -r
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from create" -l bootnum -d 'Use this Boot#### number (hex) instead of the first free one' -r
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from create" -l position -d 'Place in BootOrder' -r -f -a "first\t'First (like efibootmgr -c)'
last\t'Last'
none\t'Not in BootOrder (like efibootmgr -C)'"
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from create" -l index -d 'Index in BootOrder (overrides --position)' -r
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from create" -l efivars -d 'efivarfs directory' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from create" -l progress -d 'How to show progress: a live bar, plain lines, JSON events (on standard error), or none' -r -f -a "auto\t'A bar on a terminal, plain lines otherwise'
bar\t''
plain\t''
json\t''
none\t''"
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from create" -l inactive -d 'Create the entry inactive'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from create" -l force -d 'Create it even if the loader is not found on the partition'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from create" -l json -d 'Print JSON'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from create" -s q -l quiet -d 'Quieter: no progress and no detail lines (messages, results and errors stay)'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from create" -s v -l verbose -d 'More detail (boot list: device paths, like efibootmgr -v)'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from delete" -l efivars -d 'efivarfs directory' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from delete" -l progress -d 'How to show progress: a live bar, plain lines, JSON events (on standard error), or none' -r -f -a "auto\t'A bar on a terminal, plain lines otherwise'
bar\t''
plain\t''
json\t''
none\t''"
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from delete" -l json -d 'Print JSON'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from delete" -s q -l quiet -d 'Quieter: no progress and no detail lines (messages, results and errors stay)'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from delete" -s v -l verbose -d 'More detail (boot list: device paths, like efibootmgr -v)'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from order" -l efivars -d 'efivarfs directory' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from order" -l progress -d 'How to show progress: a live bar, plain lines, JSON events (on standard error), or none' -r -f -a "auto\t'A bar on a terminal, plain lines otherwise'
bar\t''
plain\t''
json\t''
none\t''"
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from order" -l allow-missing -d 'Accept numbers without a Boot#### variable'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from order" -l json -d 'Print JSON'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from order" -s q -l quiet -d 'Quieter: no progress and no detail lines (messages, results and errors stay)'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from order" -s v -l verbose -d 'More detail (boot list: device paths, like efibootmgr -v)'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from order" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from next" -l efivars -d 'efivarfs directory' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from next" -l progress -d 'How to show progress: a live bar, plain lines, JSON events (on standard error), or none' -r -f -a "auto\t'A bar on a terminal, plain lines otherwise'
bar\t''
plain\t''
json\t''
none\t''"
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from next" -l clear -d 'Delete BootNext'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from next" -l json -d 'Print JSON'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from next" -s q -l quiet -d 'Quieter: no progress and no detail lines (messages, results and errors stay)'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from next" -s v -l verbose -d 'More detail (boot list: device paths, like efibootmgr -v)'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from next" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from timeout" -l efivars -d 'efivarfs directory' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from timeout" -l progress -d 'How to show progress: a live bar, plain lines, JSON events (on standard error), or none' -r -f -a "auto\t'A bar on a terminal, plain lines otherwise'
bar\t''
plain\t''
json\t''
none\t''"
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from timeout" -l clear -d 'Delete Timeout'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from timeout" -l json -d 'Print JSON'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from timeout" -s q -l quiet -d 'Quieter: no progress and no detail lines (messages, results and errors stay)'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from timeout" -s v -l verbose -d 'More detail (boot list: device paths, like efibootmgr -v)'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from timeout" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from active" -l efivars -d 'efivarfs directory' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from active" -l progress -d 'How to show progress: a live bar, plain lines, JSON events (on standard error), or none' -r -f -a "auto\t'A bar on a terminal, plain lines otherwise'
bar\t''
plain\t''
json\t''
none\t''"
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from active" -l json -d 'Print JSON'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from active" -s q -l quiet -d 'Quieter: no progress and no detail lines (messages, results and errors stay)'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from active" -s v -l verbose -d 'More detail (boot list: device paths, like efibootmgr -v)'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from active" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from inactive" -l efivars -d 'efivarfs directory' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from inactive" -l progress -d 'How to show progress: a live bar, plain lines, JSON events (on standard error), or none' -r -f -a "auto\t'A bar on a terminal, plain lines otherwise'
bar\t''
plain\t''
json\t''
none\t''"
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from inactive" -l json -d 'Print JSON'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from inactive" -s q -l quiet -d 'Quieter: no progress and no detail lines (messages, results and errors stay)'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from inactive" -s v -l verbose -d 'More detail (boot list: device paths, like efibootmgr -v)'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from inactive" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from help" -f -a "list" -d 'List BootCurrent, BootNext, Timeout, BootOrder and every Boot#### (like efibootmgr)'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from help" -f -a "create" -d 'Create a boot entry HD(partition)/File(loader); an identical entry is reused'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from help" -f -a "delete" -d 'Delete a Boot#### entry (and remove it from BootOrder and BootNext)'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from help" -f -a "order" -d 'Show or set BootOrder, e.g. `order 0003,0001,0000`'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from help" -f -a "next" -d 'Set BootNext (boot this entry once), or clear it'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from help" -f -a "timeout" -d 'Set the firmware\'s boot menu Timeout in seconds, or clear it'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from help" -f -a "active" -d 'Mark an entry active (the firmware boots it)'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from help" -f -a "inactive" -d 'Mark an entry inactive (kept, but skipped by the firmware)'
complete -c sysclone -n "__fish_sysclone_using_subcommand boot; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and not __fish_seen_subcommand_from build write verify info export help" -l progress -d 'How to show progress: a live bar, plain lines, JSON events (on standard error), or none' -r -f -a "auto\t'A bar on a terminal, plain lines otherwise'
bar\t''
plain\t''
json\t''
none\t''"
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and not __fish_seen_subcommand_from build write verify info export help" -s q -l quiet -d 'Quieter: no progress and no detail lines (messages, results and errors stay)'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and not __fish_seen_subcommand_from build write verify info export help" -s v -l verbose -d 'More detail (boot list: device paths, like efibootmgr -v)'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and not __fish_seen_subcommand_from build write verify info export help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and not __fish_seen_subcommand_from build write verify info export help" -f -a "build" -d 'Build the initramfs, the dd-able USB images (UEFI, Secure Boot, BIOS) and the network boot bundle'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and not __fish_seen_subcommand_from build write verify info export help" -f -a "write" -d 'Write a USB image onto a stick (through the write guard; read back afterwards)'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and not __fish_seen_subcommand_from build write verify info export help" -f -a "verify" -d 'Check a saved image: manifest, every chunk read, decompressed and hashed'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and not __fish_seen_subcommand_from build write verify info export help" -f -a "info" -d 'Describe a saved image: source, partitions, filesystems, sizes, compression'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and not __fish_seen_subcommand_from build write verify info export help" -f -a "export" -d 'Write a saved image as a sparse raw disk file of the source\'s size'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and not __fish_seen_subcommand_from build write verify info export help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from build" -l out -d 'Output directory (initramfs.img, sysclone-usb.img, sysclone-usb-secureboot.img, pxe/, SHA256SUMS); optional with --list' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from build" -l kernel-dir -d 'Unpacked Debian kernel package (has boot/vmlinuz-* and lib/modules/*), as made by scripts/fetch-kernel' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from build" -l kernel -d 'Kernel image (default: the running kernel\'s /boot/vmlinuz-RELEASE)' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from build" -l modules -d 'Module directory lib/modules/RELEASE of that kernel (.ko, .ko.xz, .ko.zst, .ko.gz)' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from build" -l profile -d 'Which modules go in: a built-in profile (minimal, generic; see image/profiles/) or a profile file' -r
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from build" -l compression -d 'Initramfs compression: zstd (level 19), zstd:LEVEL, gzip or none' -r
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from build" -l firmware-dir -d 'Directory with firmware files (e.g. an unpacked Debian firmware package\'s lib/firmware); repeatable, searched in order. Default: the kernel package\'s lib/firmware and /lib/firmware' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from build" -l job -d 'Job file to put on the medium and name on the kernel command line' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from build" -l cmdline -d 'Extra kernel command line words' -r
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from build" -l ca -d 'A lab CA (PEM) the rescue system trusts for HTTPS besides the usual roots; put in the initramfs as /etc/sysclone/ca.pem and named by sysclone.ca=' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from build" -l trust -d 'A minisign public key the rescue system trusts (repeatable): put in the initramfs under /etc/sysclone/trust/; then every job must be signed by one of them and every image signed or pinned (docs/network.md)' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from build" -l init-binary -d 'The init binary (default: this executable; must be statically linked)' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from build" -l loader -d 'UEFI boot loader to install as \\EFI\\BOOT\\BOOTX64.EFI' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from build" -l boot-files -d 'Root below which Debian\'s boot files are found: shim-signed (usr/lib/shim/), grub-efi-amd64-signed (usr/lib/grub/x86_64-efi-signed/), shim-helpers-amd64-signed (mmx64) and grub-pc-bin (usr/lib/grub/i386-pc/, else the host\'s). `/` when the packages are installed; scripts/fetch-bootloaders unpacks them into a cache' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from build" -l tool -d 'A host program to put in the image with its loader and shared libraries, at the same path as on the host: a name (looked up in /usr/sbin:/usr/bin:/sbin:/bin) or a path. Repeatable. A missing program is an error' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from build" -l busybox -d 'The busybox binary for the shell (default /bin/busybox, from Debian\'s busybox-static); implies --shell' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from build" -l progress -d 'How to show progress: a live bar, plain lines, JSON events (on standard error), or none' -r -f -a "auto\t'A bar on a terminal, plain lines otherwise'
bar\t''
plain\t''
json\t''
none\t''"
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from build" -l list -d 'Show every module (and why it is in), the firmware and the notes; without --out, build nothing else'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from build" -l json -d 'With --list and no --out: print the listing as JSON (modules, firmware, notes, sizes)'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from build" -l no-firmware -d 'Put no firmware in the image'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from build" -l require-signature -d 'Pins are not enough: jobs and images must carry a signature by a --trust key'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from build" -l no-secure-boot -d 'Do not build the Secure Boot image (built when shim and signed GRUB are found)'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from build" -l no-bios -d 'No BIOS boot on the USB images (added when grub-mkimage and grub-pc-bin are found)'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from build" -l no-pxe -d 'Do not write the network boot bundle (pxe/)'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from build" -l initramfs-only -d 'Build only the initramfs'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from build" -l no-default-tools -d 'Leave out the default tools (resize2fs, e2fsck, tune2fs, ntfsresize, ntfsfix, mkswap), which are otherwise added when the build host has them'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from build" -l shell -d 'Add a shell: busybox (see --busybox) as /bin/sh, with links for common applets that do not clash with a --tool or with sysclone\'s modprobe'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from build" -s q -l quiet -d 'Quieter: no progress and no detail lines (messages, results and errors stay)'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from build" -s v -l verbose -d 'More detail (boot list: device paths, like efibootmgr -v)'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from build" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from write" -l to -d 'The stick: selector (serial=…, by-id=…, model=…) or device path; everything on it is overwritten' -r
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from write" -l progress -d 'How to show progress: a live bar, plain lines, JSON events (on standard error), or none' -r -f -a "auto\t'A bar on a terminal, plain lines otherwise'
bar\t''
plain\t''
json\t''
none\t''"
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from write" -s y -l yes -d 'Do not ask for the typed confirmation (the write guard still applies)'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from write" -l no-verify -d 'Do not read the stick back to compare'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from write" -s q -l quiet -d 'Quieter: no progress and no detail lines (messages, results and errors stay)'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from write" -s v -l verbose -d 'More detail (boot list: device paths, like efibootmgr -v)'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from write" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from verify" -l trust -d 'A minisign public key to trust (repeatable). Then a job file must carry a good signature by one of them (FILE.minisig), and an image\'s manifest too (manifest.json.minisig) unless a job pins it (image.sha256)' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from verify" -l progress -d 'How to show progress: a live bar, plain lines, JSON events (on standard error), or none' -r -f -a "auto\t'A bar on a terminal, plain lines otherwise'
bar\t''
plain\t''
json\t''
none\t''"
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from verify" -l json -d 'Print the report as JSON on standard output'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from verify" -s q -l quiet -d 'Quieter: no progress and no detail lines (messages, results and errors stay)'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from verify" -s v -l verbose -d 'More detail (boot list: device paths, like efibootmgr -v)'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from verify" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from info" -l progress -d 'How to show progress: a live bar, plain lines, JSON events (on standard error), or none' -r -f -a "auto\t'A bar on a terminal, plain lines otherwise'
bar\t''
plain\t''
json\t''
none\t''"
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from info" -l json -d 'Print the manifest\'s description as JSON (without the chunk list)'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from info" -s q -l quiet -d 'Quieter: no progress and no detail lines (messages, results and errors stay)'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from info" -s v -l verbose -d 'More detail (boot list: device paths, like efibootmgr -v)'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from info" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from export" -l raw -d 'The raw file to create (must not exist)' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from export" -l progress -d 'How to show progress: a live bar, plain lines, JSON events (on standard error), or none' -r -f -a "auto\t'A bar on a terminal, plain lines otherwise'
bar\t''
plain\t''
json\t''
none\t''"
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from export" -l json -d 'Print the report as JSON on standard output'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from export" -s q -l quiet -d 'Quieter: no progress and no detail lines (messages, results and errors stay)'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from export" -s v -l verbose -d 'More detail (boot list: device paths, like efibootmgr -v)'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from export" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from help" -f -a "build" -d 'Build the initramfs, the dd-able USB images (UEFI, Secure Boot, BIOS) and the network boot bundle'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from help" -f -a "write" -d 'Write a USB image onto a stick (through the write guard; read back afterwards)'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from help" -f -a "verify" -d 'Check a saved image: manifest, every chunk read, decompressed and hashed'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from help" -f -a "info" -d 'Describe a saved image: source, partitions, filesystems, sizes, compression'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from help" -f -a "export" -d 'Write a saved image as a sparse raw disk file of the source\'s size'
complete -c sysclone -n "__fish_sysclone_using_subcommand image; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sysclone -n "__fish_sysclone_using_subcommand job; and not __fish_seen_subcommand_from check run help" -l progress -d 'How to show progress: a live bar, plain lines, JSON events (on standard error), or none' -r -f -a "auto\t'A bar on a terminal, plain lines otherwise'
bar\t''
plain\t''
json\t''
none\t''"
complete -c sysclone -n "__fish_sysclone_using_subcommand job; and not __fish_seen_subcommand_from check run help" -s q -l quiet -d 'Quieter: no progress and no detail lines (messages, results and errors stay)'
complete -c sysclone -n "__fish_sysclone_using_subcommand job; and not __fish_seen_subcommand_from check run help" -s v -l verbose -d 'More detail (boot list: device paths, like efibootmgr -v)'
complete -c sysclone -n "__fish_sysclone_using_subcommand job; and not __fish_seen_subcommand_from check run help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sysclone -n "__fish_sysclone_using_subcommand job; and not __fish_seen_subcommand_from check run help" -f -a "check" -d 'Check a job file and print what it will do'
complete -c sysclone -n "__fish_sysclone_using_subcommand job; and not __fish_seen_subcommand_from check run help" -f -a "run" -d 'Run a job file on this machine, as the rescue image would (writes disks)'
complete -c sysclone -n "__fish_sysclone_using_subcommand job; and not __fish_seen_subcommand_from check run help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sysclone -n "__fish_sysclone_using_subcommand job; and __fish_seen_subcommand_from check" -l sig -d 'The job\'s signature [default: FILE.minisig]; checked with --trust' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand job; and __fish_seen_subcommand_from check" -l trust -d 'A minisign public key to trust (repeatable). Then a job file must carry a good signature by one of them (FILE.minisig), and an image\'s manifest too (manifest.json.minisig) unless a job pins it (image.sha256)' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand job; and __fish_seen_subcommand_from check" -l progress -d 'How to show progress: a live bar, plain lines, JSON events (on standard error), or none' -r -f -a "auto\t'A bar on a terminal, plain lines otherwise'
bar\t''
plain\t''
json\t''
none\t''"
complete -c sysclone -n "__fish_sysclone_using_subcommand job; and __fish_seen_subcommand_from check" -l plan -d 'Also find its disks on this machine and print the plan it would carry out (nothing is written)'
complete -c sysclone -n "__fish_sysclone_using_subcommand job; and __fish_seen_subcommand_from check" -l json -d 'Print the checked job as JSON on standard output (with defaults filled in)'
complete -c sysclone -n "__fish_sysclone_using_subcommand job; and __fish_seen_subcommand_from check" -s q -l quiet -d 'Quieter: no progress and no detail lines (messages, results and errors stay)'
complete -c sysclone -n "__fish_sysclone_using_subcommand job; and __fish_seen_subcommand_from check" -s v -l verbose -d 'More detail (boot list: device paths, like efibootmgr -v)'
complete -c sysclone -n "__fish_sysclone_using_subcommand job; and __fish_seen_subcommand_from check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sysclone -n "__fish_sysclone_using_subcommand job; and __fish_seen_subcommand_from run" -l sig -d 'The job\'s signature [default: FILE.minisig]; checked with --trust' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand job; and __fish_seen_subcommand_from run" -l trust -d 'A minisign public key to trust (repeatable). Then a job file must carry a good signature by one of them (FILE.minisig), and an image\'s manifest too (manifest.json.minisig) unless a job pins it (image.sha256)' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand job; and __fish_seen_subcommand_from run" -l progress -d 'How to show progress: a live bar, plain lines, JSON events (on standard error), or none' -r -f -a "auto\t'A bar on a terminal, plain lines otherwise'
bar\t''
plain\t''
json\t''
none\t''"
complete -c sysclone -n "__fish_sysclone_using_subcommand job; and __fish_seen_subcommand_from run" -l yes -d 'Write the job\'s target disk(s) without asking for their serials (as the job\'s confirm = "serial" does)'
complete -c sysclone -n "__fish_sysclone_using_subcommand job; and __fish_seen_subcommand_from run" -s q -l quiet -d 'Quieter: no progress and no detail lines (messages, results and errors stay)'
complete -c sysclone -n "__fish_sysclone_using_subcommand job; and __fish_seen_subcommand_from run" -s v -l verbose -d 'More detail (boot list: device paths, like efibootmgr -v)'
complete -c sysclone -n "__fish_sysclone_using_subcommand job; and __fish_seen_subcommand_from run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sysclone -n "__fish_sysclone_using_subcommand job; and __fish_seen_subcommand_from help" -f -a "check" -d 'Check a job file and print what it will do'
complete -c sysclone -n "__fish_sysclone_using_subcommand job; and __fish_seen_subcommand_from help" -f -a "run" -d 'Run a job file on this machine, as the rescue image would (writes disks)'
complete -c sysclone -n "__fish_sysclone_using_subcommand job; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sysclone -n "__fish_sysclone_using_subcommand offline" -l efivars -d 'efivarfs directory' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand offline" -l progress -d 'How to show progress: a live bar, plain lines, JSON events (on standard error), or none' -r -f -a "auto\t'A bar on a terminal, plain lines otherwise'
bar\t''
plain\t''
json\t''
none\t''"
complete -c sysclone -n "__fish_sysclone_using_subcommand offline" -l cancel -d 'Remove the staged job (its files under \\EFI\\sysclone\\offline\\, its boot entry, BootNext)'
complete -c sysclone -n "__fish_sysclone_using_subcommand offline" -s q -l quiet -d 'Quieter: no progress and no detail lines (messages, results and errors stay)'
complete -c sysclone -n "__fish_sysclone_using_subcommand offline" -s v -l verbose -d 'More detail (boot list: device paths, like efibootmgr -v)'
complete -c sysclone -n "__fish_sysclone_using_subcommand offline" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sysclone -n "__fish_sysclone_using_subcommand status" -l efivars -d 'efivarfs directory' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand status" -l progress -d 'How to show progress: a live bar, plain lines, JSON events (on standard error), or none' -r -f -a "auto\t'A bar on a terminal, plain lines otherwise'
bar\t''
plain\t''
json\t''
none\t''"
complete -c sysclone -n "__fish_sysclone_using_subcommand status" -l json -d 'Print JSON instead of text'
complete -c sysclone -n "__fish_sysclone_using_subcommand status" -s q -l quiet -d 'Quieter: no progress and no detail lines (messages, results and errors stay)'
complete -c sysclone -n "__fish_sysclone_using_subcommand status" -s v -l verbose -d 'More detail (boot list: device paths, like efibootmgr -v)'
complete -c sysclone -n "__fish_sysclone_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sysclone -n "__fish_sysclone_using_subcommand gen-docs" -l man -d 'Directory for sysclone.1, sysclone-SUBCOMMAND.1, …' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand gen-docs" -l completions -d 'Directory for sysclone.bash, _sysclone (zsh) and sysclone.fish' -r -F
complete -c sysclone -n "__fish_sysclone_using_subcommand gen-docs" -l progress -d 'How to show progress: a live bar, plain lines, JSON events (on standard error), or none' -r -f -a "auto\t'A bar on a terminal, plain lines otherwise'
bar\t''
plain\t''
json\t''
none\t''"
complete -c sysclone -n "__fish_sysclone_using_subcommand gen-docs" -s q -l quiet -d 'Quieter: no progress and no detail lines (messages, results and errors stay)'
complete -c sysclone -n "__fish_sysclone_using_subcommand gen-docs" -s v -l verbose -d 'More detail (boot list: device paths, like efibootmgr -v)'
complete -c sysclone -n "__fish_sysclone_using_subcommand gen-docs" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sysclone -n "__fish_sysclone_using_subcommand help; and not __fish_seen_subcommand_from disks clone migrate save restore boot image job offline status gen-docs help" -f -a "disks" -d 'List disks, their partitions and roles'
complete -c sysclone -n "__fish_sysclone_using_subcommand help; and not __fish_seen_subcommand_from disks clone migrate save restore boot image job offline status gen-docs help" -f -a "clone" -d 'Clone one disk onto another (every byte, or used blocks only)'
complete -c sysclone -n "__fish_sysclone_using_subcommand help; and not __fish_seen_subcommand_from disks clone migrate save restore boot image job offline status gen-docs help" -f -a "migrate" -d 'Move chosen partitions onto a smaller or larger disk, resized'
complete -c sysclone -n "__fish_sysclone_using_subcommand help; and not __fish_seen_subcommand_from disks clone migrate save restore boot image job offline status gen-docs help" -f -a "save" -d 'Save a disk\'s used blocks into an image directory (compressed, checksummed)'
complete -c sysclone -n "__fish_sysclone_using_subcommand help; and not __fish_seen_subcommand_from disks clone migrate save restore boot image job offline status gen-docs help" -f -a "restore" -d 'Write an image directory back onto a disk of at least the saved disk\'s size'
complete -c sysclone -n "__fish_sysclone_using_subcommand help; and not __fish_seen_subcommand_from disks clone migrate save restore boot image job offline status gen-docs help" -f -a "boot" -d 'UEFI boot entries (list, create, delete, order, next, timeout, active/inactive)'
complete -c sysclone -n "__fish_sysclone_using_subcommand help; and not __fish_seen_subcommand_from disks clone migrate save restore boot image job offline status gen-docs help" -f -a "image" -d 'Boot media (build, write) and saved disk images (verify, info, export)'
complete -c sysclone -n "__fish_sysclone_using_subcommand help; and not __fish_seen_subcommand_from disks clone migrate save restore boot image job offline status gen-docs help" -f -a "job" -d 'Job files'
complete -c sysclone -n "__fish_sysclone_using_subcommand help; and not __fish_seen_subcommand_from disks clone migrate save restore boot image job offline status gen-docs help" -f -a "offline" -d 'Offline jobs (staged with clone/migrate/save --offline): cancel one before it runs'
complete -c sysclone -n "__fish_sysclone_using_subcommand help; and not __fish_seen_subcommand_from disks clone migrate save restore boot image job offline status gen-docs help" -f -a "status" -d 'The offline job staged for the next boot, and the last offline run\'s report'
complete -c sysclone -n "__fish_sysclone_using_subcommand help; and not __fish_seen_subcommand_from disks clone migrate save restore boot image job offline status gen-docs help" -f -a "gen-docs" -d 'Write the man pages and shell completions (for packagers; see scripts/gen-docs)'
complete -c sysclone -n "__fish_sysclone_using_subcommand help; and not __fish_seen_subcommand_from disks clone migrate save restore boot image job offline status gen-docs help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sysclone -n "__fish_sysclone_using_subcommand help; and __fish_seen_subcommand_from boot" -f -a "list" -d 'List BootCurrent, BootNext, Timeout, BootOrder and every Boot#### (like efibootmgr)'
complete -c sysclone -n "__fish_sysclone_using_subcommand help; and __fish_seen_subcommand_from boot" -f -a "create" -d 'Create a boot entry HD(partition)/File(loader); an identical entry is reused'
complete -c sysclone -n "__fish_sysclone_using_subcommand help; and __fish_seen_subcommand_from boot" -f -a "delete" -d 'Delete a Boot#### entry (and remove it from BootOrder and BootNext)'
complete -c sysclone -n "__fish_sysclone_using_subcommand help; and __fish_seen_subcommand_from boot" -f -a "order" -d 'Show or set BootOrder, e.g. `order 0003,0001,0000`'
complete -c sysclone -n "__fish_sysclone_using_subcommand help; and __fish_seen_subcommand_from boot" -f -a "next" -d 'Set BootNext (boot this entry once), or clear it'
complete -c sysclone -n "__fish_sysclone_using_subcommand help; and __fish_seen_subcommand_from boot" -f -a "timeout" -d 'Set the firmware\'s boot menu Timeout in seconds, or clear it'
complete -c sysclone -n "__fish_sysclone_using_subcommand help; and __fish_seen_subcommand_from boot" -f -a "active" -d 'Mark an entry active (the firmware boots it)'
complete -c sysclone -n "__fish_sysclone_using_subcommand help; and __fish_seen_subcommand_from boot" -f -a "inactive" -d 'Mark an entry inactive (kept, but skipped by the firmware)'
complete -c sysclone -n "__fish_sysclone_using_subcommand help; and __fish_seen_subcommand_from image" -f -a "build" -d 'Build the initramfs, the dd-able USB images (UEFI, Secure Boot, BIOS) and the network boot bundle'
complete -c sysclone -n "__fish_sysclone_using_subcommand help; and __fish_seen_subcommand_from image" -f -a "write" -d 'Write a USB image onto a stick (through the write guard; read back afterwards)'
complete -c sysclone -n "__fish_sysclone_using_subcommand help; and __fish_seen_subcommand_from image" -f -a "verify" -d 'Check a saved image: manifest, every chunk read, decompressed and hashed'
complete -c sysclone -n "__fish_sysclone_using_subcommand help; and __fish_seen_subcommand_from image" -f -a "info" -d 'Describe a saved image: source, partitions, filesystems, sizes, compression'
complete -c sysclone -n "__fish_sysclone_using_subcommand help; and __fish_seen_subcommand_from image" -f -a "export" -d 'Write a saved image as a sparse raw disk file of the source\'s size'
complete -c sysclone -n "__fish_sysclone_using_subcommand help; and __fish_seen_subcommand_from job" -f -a "check" -d 'Check a job file and print what it will do'
complete -c sysclone -n "__fish_sysclone_using_subcommand help; and __fish_seen_subcommand_from job" -f -a "run" -d 'Run a job file on this machine, as the rescue image would (writes disks)'
