# Shared by scripts/demo and scripts/test: install what is missing (fresh Debian, as root),
# fetch the kernel, build the static binary, the rescue image and the test fixtures.
# Sourced, not run. Sets: TOP, CACHE, KDIR, BIN, OUT.
set -euo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${SYSCLONE_CACHE:-$TOP/.cache}
OUT=$CACHE/e2e
mkdir -p "$CACHE" "$OUT"

say() { printf '\n==> %s\n' "$*"; }

install_deps() {
    local pkgs=(qemu-system-x86 ovmf systemd-boot-efi e2fsprogs dosfstools mtools ntfs-3g btrfs-progs xfsprogs gdisk musl-tools busybox-static qemu-utils efibootmgr
                util-linux file cpio gzip python3 python3-pip python3-venv curl ca-certificates gcc
                grub-pc-bin seabios ipxe-qemu xz-utils zstd nginx-light openssl minisign
                man-db groff-base)
    local missing=()
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    if ! command -v cargo >/dev/null; then
        [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
    fi
    if ! command -v cargo >/dev/null; then
        say "installing Rust (rustup from Debian)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustup >/dev/null 2>&1 || true
        rustup default stable
    fi
    rustup target list --installed | grep -q x86_64-unknown-linux-musl || rustup target add x86_64-unknown-linux-musl
    # virt-firmware reads OVMF variable stores for the test's assertions.
    if [ ! -x "$CACHE/venv/bin/virt-fw-vars" ]; then
        say "installing virt-firmware (PyPI) into $CACHE/venv"
        python3 -m venv "$CACHE/venv"
        "$CACHE/venv/bin/pip" install -q virt-firmware
    fi
    export PATH="$CACHE/venv/bin:$PATH"
}

build_all() {
    say "fetching Debian's kernel, signed boot loaders and firmware"
    KDIR=$("$TOP/scripts/fetch-kernel")
    BOOTFILES=$("$TOP/scripts/fetch-bootloaders")
    FWDIR=$("$TOP/scripts/fetch-firmware")
    say "building the static sysclone binary"
    (cd "$TOP" && cargo build --release --locked --target x86_64-unknown-linux-musl -p sysclone)
    BIN=$TOP/target/x86_64-unknown-linux-musl/release/sysclone
    file "$BIN" | grep -Eq "statically linked|static-pie linked" || { echo "sysclone is not statically linked: $(file "$BIN")" >&2; exit 1; }
    say "building the rescue image (job: $TOP/image/jobs/e2e-clone.toml)"
    "$BIN" image build --kernel-dir "$KDIR" --job "$TOP/image/jobs/e2e-clone.toml" --out "$OUT/rescue"
    "$BIN" image build --kernel-dir "$KDIR" --job "$TOP/image/jobs/e2e-refuse-stick.toml" --out "$OUT/rescue-refuse"
    "$BIN" image build --kernel-dir "$KDIR" --cmdline "sysclone.mode=list" --out "$OUT/rescue-list"
    "$BIN" image build --kernel-dir "$KDIR" --job "$TOP/image/jobs/e2e-clone-next.toml" --out "$OUT/rescue-next"
    # Boot media (issue 7): Secure Boot and BIOS on the listing image, its PXE bundle; the
    # generic profile with firmware. Built with a fixed SOURCE_DATE_EPOCH so that
    # tests/e2e/media.rs can rebuild them and compare bytes.
    local media=(--boot-files "$BOOTFILES" --cmdline "sysclone.mode=list")
    SOURCE_DATE_EPOCH=1700000000 "$BIN" image build --kernel-dir "$KDIR" "${media[@]}" --out "$OUT/media-minimal"
    SOURCE_DATE_EPOCH=1700000000 "$BIN" image build --kernel-dir "$KDIR" "${media[@]}" --profile generic --firmware-dir "$FWDIR" --no-pxe --out "$OUT/media-generic"
    printf 'KDIR=%s\nBOOTFILES=%s\nFWDIR=%s\n' "$KDIR" "$BOOTFILES" "$FWDIR" > "$OUT/media-inputs"
    "$BIN" image build --kernel-dir "$KDIR" --job "$TOP/image/jobs/e2e-migrate-shrink.toml" --out "$OUT/rescue-migrate"
    "$BIN" image build --kernel-dir "$KDIR" --job "$TOP/image/jobs/e2e-migrate-new.toml" --out "$OUT/rescue-migrate-new"
    "$BIN" image build --kernel-dir "$KDIR" --shell --tool efibootmgr --cmdline "sysclone.mode=shell" --out "$OUT/rescue-shell"
    "$BIN" image build --kernel-dir "$KDIR" --cmdline "sysclone.mode=interactive" --out "$OUT/rescue-ui"
    "$BIN" image build --kernel-dir "$KDIR" --job "$TOP/image/jobs/e2e-ambiguous.toml" --out "$OUT/rescue-ambiguous"
    "$BIN" image build --kernel-dir "$KDIR" --job "$TOP/image/jobs/e2e-restore.toml" --out "$OUT/rescue-restore"
    # Signatures (tests/e2e/network.rs): a lab key pair made by minisign; the image trusts it.
    mkdir -p "$OUT/trust"
    [ -f "$OUT/trust/lab.key" ] || minisign -G -W -p "$OUT/trust/lab.pub" -s "$OUT/trust/lab.key" >/dev/null
    "$BIN" image build --kernel-dir "$KDIR" --cmdline "sysclone.mode=interactive" --trust "$OUT/trust/lab.pub" --no-pxe --out "$OUT/rescue-signed"
    say "building the fixture system disk"
    "$TOP/scripts/make-fixture" "$KDIR" "$OUT/rescue/initramfs.img" "$OUT/fixture"
    say "sizes: binary $(stat -c %s "$BIN") bytes; initramfs minimal $(stat -c %s "$OUT/media-minimal/initramfs.img"), generic $(stat -c %s "$OUT/media-generic/initramfs.img"); USB image $(stat -c %s "$OUT/media-minimal/sysclone-usb.img") bytes"
    export SYSCLONE_E2E_DIR=$OUT SYSCLONE_BIN=$BIN
}
