#!/usr/bin/env python3
"""Helpers of scripts/bench (not run on their own).

  bench.py fill ROOT ESP_DIR    fill a mounted ext4 root and stage the ESP's files
  bench.py summary RESULTS_DIR  medians, table and goals from RESULTS_DIR/raw.tsv + meta.json

File contents come from one AES-128-CTR keystream (openssl, fixed password): incompressible,
never repeating (so nothing deduplicates), fast (~1 GB/s), and the same on every run.
"""

import json
import os
import random
import statistics
import subprocess
import sys

MiB = 1 << 20
GiB = 1 << 30


class Stream:
    """An endless incompressible byte stream (AES-128-CTR keystream of zeros)."""

    def __init__(self, password):
        self.p = subprocess.Popen(
            ["openssl", "enc", "-aes-128-ctr", "-nosalt", "-pbkdf2", "-pass", "pass:" + password, "-in", "/dev/zero"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0)

    def read(self, n):
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = self.p.stdout.readinto(view[got:])
            if not k:
                raise RuntimeError("openssl stream ended")
            got += k
        return buf

    def write_file(self, path, size, chunk=4 * MiB):
        with open(path, "wb") as f:
            left = size
            while left:
                k = min(chunk, left)
                f.write(self.read(k))
                left -= k

    def close(self):
        self.p.kill()
        self.p.wait()


WORDS = ("the of and to in is for on that with as by this be are from at or an it not which "
         "config service kernel module device partition block inode journal extent mount "
         "root boot efi loader entry package version install remove update error warning info "
         "debug value option default enable disable true false none user group path file").split()


def text_corpus(rng, size):
    out = []
    n = 0
    while n < size:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 14))) + "\n"
        out.append(line)
        n += len(line)
    return "".join(out).encode()[:size]


def small_size(rng):
    # Log-normal around 6 KiB (mean ~14 KiB), as in /usr and /etc: many tiny files, a tail to 1 MiB.
    return int(min(max(rng.lognormvariate(8.7, 1.3), 64), MiB))


def fill(root, esp_dir):
    """Fill ROOT to ~25% of an 8 GiB disk: small files, medium and large incompressible
    files, created interleaved; then delete a part of each kind (their blocks keep data
    that an exact copy moves and a used-blocks copy skips)."""
    rng = random.Random(20240611)
    s = Stream("sysclone-bench")
    corpus = text_corpus(rng, 4 * MiB)
    items = []  # (kind, index, delete?)
    items += [("small", i, i % 5 == 4) for i in range(25000)]          # 20000 kept
    items += [("medium", i, i % 19 in (3, 7, 11, 15)) for i in range(190)]  # 150 kept
    items += [("large", i, i % 3 == 1) for i in range(9)]               # 6 kept
    rng.shuffle(items)
    doomed = []
    totals = {"small": [0, 0], "medium": [0, 0], "large": [0, 0]}  # kept files, kept bytes
    for kind, i, delete in items:
        if kind == "small":
            d = os.path.join(root, "usr", "share", "pkg%03d" % (i // 100))
            name = "f%05d%s" % (i, rng.choice([".conf", ".txt", ".py", ".so", ".png", ".json", ""]))
            size = small_size(rng)
            if rng.random() < 0.35:
                off = rng.randrange(0, len(corpus) - size)
                data = (b"# %s %d\n" % (name.encode(), i)) + corpus[off:off + size]
            else:
                data = s.read(size)
            os.makedirs(d, exist_ok=True)
            path = os.path.join(d, name)
            with open(path, "wb") as f:
                f.write(data)
            size = len(data)
        elif kind == "medium":
            d = os.path.join(root, "home", "user", "media", "album%02d" % (i // 20))
            size = rng.randint(1 * MiB, 8 * MiB)
            os.makedirs(d, exist_ok=True)
            path = os.path.join(d, "m%03d.bin" % i)
            s.write_file(path, size)
        else:
            d = os.path.join(root, "var", "lib", "images")
            size = 128 * MiB
            os.makedirs(d, exist_ok=True)
            path = os.path.join(d, "disk%d.img" % i)
            s.write_file(path, size)
        if delete:
            doomed.append(path)
        else:
            totals[kind][0] += 1
            totals[kind][1] += size
    os.sync()
    for p in doomed:
        os.unlink(p)
    # The ESP's files: loaders, a kernel and initramfs-sized blobs, loader entries.
    for rel, size in [("EFI/BOOT/BOOTX64.EFI", 960 * 1024), ("EFI/debian/shimx64.efi", 960 * 1024),
                      ("EFI/debian/grubx64.efi", 2 * MiB), ("EFI/debian/mmx64.efi", 850 * 1024),
                      ("EFI/Linux/vmlinuz-6.1.0", 8 * MiB), ("EFI/Linux/initrd.img-6.1.0", 40 * MiB),
                      ("EFI/Linux/vmlinuz-6.1.0.old", 8 * MiB), ("EFI/Linux/initrd.img-6.1.0.old", 38 * MiB)]:
        p = os.path.join(esp_dir, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        s.write_file(p, size)
    os.makedirs(os.path.join(esp_dir, "loader", "entries"), exist_ok=True)
    for i in range(40):
        with open(os.path.join(esp_dir, "loader", "entries", "entry%02d.conf" % i), "w") as f:
            f.write("title entry %d\nlinux /EFI/Linux/vmlinuz-6.1.0\ninitrd /EFI/Linux/initrd.img-6.1.0\n" % i)
    s.close()
    for k, (n, b) in totals.items():
        print("  %-6s %6d files kept, %7.1f MiB" % (k, n, b / MiB))
    print("  deleted %d files" % len(doomed))


# ---------------------------------------------------------------------------------------
# Summary

ROWS = [
    # key, group, label
    ("sysclone-exact", "exact", "sysclone clone --mode exact"),
    ("sysclone-exact-verify", "exact", "sysclone clone --mode exact --verify"),
    ("dd", "exact", "dd bs=4M conv=fsync"),
    ("dd-direct", "exact", "dd bs=4M iflag=direct oflag=direct"),
    ("qemu-img", "exact", "qemu-img convert -O raw"),
    ("limit-read-all", "exact", "limit: read all (dd iflag=direct bs=8M)"),
    ("limit-write-all", "exact", "limit: write all (dd oflag=direct bs=8M)"),
    ("limit-rw-all", "exact", "limit: both at once (the two dd above together)"),
    ("limit-rwv-all", "exact", "limit: both at once and a second read of all (verify's floor)"),
    ("sysclone-smart", "smart", "sysclone clone --mode smart"),
    ("sysclone-smart-verify", "smart", "sysclone clone --mode smart --verify"),
    ("partclone", "smart", "partclone.ext4 -b (root partition only)"),
    ("e2image", "smart", "e2image -ra -p (root partition only)"),
    ("limit-read-used", "smart", "limit: read used bytes (dd iflag=direct bs=8M)"),
    ("limit-write-used", "smart", "limit: write used bytes (dd oflag=direct bs=8M)"),
    ("limit-rw-used", "smart", "limit: both at once (the two dd above together)"),
    ("limit-rwv-used", "smart", "limit: both at once and a second read of as much (verify's floor)"),
    ("e2image-null", "smart", "info: e2image -ra root → /dev/null"),
    ("sysclone-save", "save", "sysclone save (whole disk, zstd -3, all cores)"),
    ("pz-save", "save", "partclone.vfat / .ext4 -c | zstd -T0 -3 (ESP + root)"),
    ("sysclone-restore", "restore", "sysclone restore (whole disk, onto a blank disk)"),
    ("pz-restore", "restore", "zstd -d | partclone.restore (ESP + root)"),
]
BASE = {"exact": "sysclone-exact", "smart": "sysclone-smart", "save": "sysclone-save", "restore": "sysclone-restore"}


def load(results):
    meta = json.load(open(os.path.join(results, "meta.json")))
    runs = {}
    with open(os.path.join(results, "raw.tsv")) as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            r = dict(zip(header, line.rstrip("\n").split("\t")))
            runs.setdefault(r["tool"], []).append(r)
    reports = {}
    for key in ("sysclone-exact", "sysclone-exact-verify", "sysclone-smart", "sysclone-smart-verify"):
        for r in runs.get(key, []):
            with open(os.path.join(results, "%s.r%s.out" % (key, r["round"]))) as f:
                reports.setdefault(key, []).append(json.loads(f.read().strip().splitlines()[-1]))
    meta["reports"] = reports
    return meta, runs


def cell(text):
    """Text for a Markdown table cell (shell pipes in labels would split the row)."""
    return text.replace("|", "\\|")


def med(rs, field):
    return statistics.median(float(r[field]) for r in rs)


def summary(results):
    meta, runs = load(results)
    out = []
    p = out.append
    stats = {}
    for key, group, label in ROWS:
        rs = runs.get(key)
        if not rs:
            continue
        secs = [float(r["seconds"]) for r in rs]
        st = {
            "label": label, "group": group, "n": len(rs),
            "median": statistics.median(secs), "min": min(secs), "max": max(secs),
            "user": med(rs, "user"), "sys": med(rs, "sys"),
            "rss": max(int(r["maxrss_kib"]) for r in rs) / 1024,
            "bytes": statistics.median(int(r["bytes"]) for r in rs),
            "busy": max(int(r["busy_pct"]) for r in rs),
        }
        st["mibs"] = st["bytes"] / MiB / st["median"]
        stats[key] = st
    base = {g: stats.get(k) for g, k in BASE.items()}
    p("| tool | median s | min–max s | MiB moved | MiB/s | user s | sys s | peak RSS MiB | ÷ sysclone |")
    p("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key, group, label in ROWS:
        st = stats.get(key)
        if not st:
            continue
        b = base[group]
        ratio = "%.2f×" % (st["median"] / b["median"]) if b else "–"
        p("| %s | %.2f | %.2f–%.2f | %.0f | %.0f | %.2f | %.2f | %.1f | %s |" % (
            cell(label), st["median"], st["min"], st["max"], st["bytes"] / MiB, st["mibs"], st["user"], st["sys"], st["rss"], ratio))
    p("")
    p("`÷ sysclone`: the tool's median time over sysclone's in the same group (exact, smart, save or restore);"
      " above 1 means sysclone is faster.")
    p("")
    # sysclone's own reports
    clones = [k for k in ("sysclone-exact", "sysclone-exact-verify", "sysclone-smart", "sysclone-smart-verify") if meta.get("reports", {}).get(k)]
    if clones:
        p("sysclone's JSON reports (medians):")
        p("")
        p("| run | bytes_planned | bytes_written | seconds (own) | wall s | MiB/s (own) | direct_io | verified | peak_rss MiB (own) |")
        p("|---|---:|---:|---:|---:|---:|---|---|---:|")
        for key in ("sysclone-exact", "sysclone-exact-verify", "sysclone-smart", "sysclone-smart-verify"):
            reps = meta.get("reports", {}).get(key, [])
            if not reps:
                continue
            p("| %s | %d | %d | %.2f | %.2f | %.0f | %s | %s | %.1f |" % (
                key, statistics.median(r["bytes_planned"] for r in reps), statistics.median(r["bytes_written"] for r in reps),
                statistics.median(r["seconds"] for r in reps), stats[key]["median"],
                statistics.median(r["mib_per_second"] for r in reps),
                "/".join(sorted({str(r["direct_io"]).lower() for r in reps})),
                "/".join(sorted({str(r["verified"]).lower() for r in reps})),
                max(r["peak_rss_bytes"] for r in reps) / MiB))
        p("")
    # goals
    g = []

    def goal(name, ok, text):
        g.append((name, ok, text))

    def S(k):
        return stats[k]["median"] if k in stats else None

    se, ss = S("sysclone-exact"), S("sysclone-smart")

    def both(what, t):
        r, w, rw = S("limit-read-" + what), S("limit-write-" + what), S("limit-rw-" + what)
        txt = "; vs one after the other (%.2f s): %.2f×" % (r + w, t / (r + w))
        if rw:
            txt += "; vs both at once (%.2f s, source and target share one disk here): %.2f×" % (rw, t / rw)
        return txt
    if se and S("dd") and S("qemu-img"):
        fastest = min(S("dd"), S("qemu-img"))
        who = "dd" if S("dd") <= S("qemu-img") else "qemu-img"
        goal("exact ≥ 1.0× the fastest of dd and qemu-img", fastest / se >= 1.0,
             "%s %.2f s / sysclone %.2f s = %.2f×" % (who, fastest, se, fastest / se))
    if se and S("limit-read-all") and S("limit-write-all"):
        lim = max(S("limit-read-all"), S("limit-write-all"))
        goal("exact ≤ 1.15× the limit", se / lim <= 1.15,
             "sysclone %.2f s / limit max(read %.2f, write %.2f) = %.2f×%s"
             % (se, S("limit-read-all"), S("limit-write-all"), se / lim, both("all", se)))
    if ss and S("partclone"):
        goal("smart ≥ 3× partclone", S("partclone") / ss >= 3.0,
             "partclone (root only) %.2f s / sysclone smart (whole disk) %.2f s = %.2f×" % (S("partclone"), ss, S("partclone") / ss))
    if ss and S("limit-read-used") and S("limit-write-used"):
        lim = max(S("limit-read-used"), S("limit-write-used"))
        goal("smart ≤ 1.5× the used-bytes limit", ss / lim <= 1.5,
             "sysclone smart %.2f s / limit max(read %.2f, write %.2f) = %.2f×%s"
             % (ss, S("limit-read-used"), S("limit-write-used"), ss / lim, both("used", ss)))
    for m in ("exact", "smart"):
        a, b = S("sysclone-%s" % m), S("sysclone-%s-verify" % m)
        if a and b:
            what = "all" if m == "exact" else "used"
            rw, rwv = S("limit-rw-" + what), S("limit-rwv-" + what)
            floor = ("; on this disk a third stream alone costs +%.0f%% (read+write+read %.2f s vs read+write %.2f s)"
                     % ((rwv / rw - 1) * 100, rwv, rw)) if rw and rwv else ""
            goal("verify adds ≤ 15%% (%s)" % m, b / a - 1 <= 0.15,
                 "%.2f s with --verify vs %.2f s without: +%.0f%%%s" % (b, a, (b / a - 1) * 100, floor))
    sizes = {}
    sizes_path = os.path.join(results, "sizes.tsv")
    if os.path.exists(sizes_path):
        with open(sizes_path) as f:
            f.readline()
            for line in f:
                k, b = line.split()
                sizes[k] = int(b)
    sv, rs_ = S("sysclone-save"), S("sysclone-restore")
    if "sysclone-save" in sizes and "pz-save" in sizes:
        goal("image ≤ partclone+zstd -3 size", sizes["sysclone-save"] <= sizes["pz-save"],
             "sysclone image (whole disk: table, boot area, ESP, root) %.1f MiB vs partclone | zstd -T0 -3 (ESP + root) %.1f MiB = %.2f×"
             % (sizes["sysclone-save"] / MiB, sizes["pz-save"] / MiB, sizes["sysclone-save"] / sizes["pz-save"]))
    if sv and S("pz-save"):
        goal("save ≥ 3× partclone | zstd", S("pz-save") / sv >= 3.0,
             "partclone | zstd (ESP + root) %.2f s / sysclone save (whole disk) %.2f s = %.2f×; MiB/s %.0f vs %.0f"
             % (S("pz-save"), sv, S("pz-save") / sv, stats["pz-save"]["mibs"], stats["sysclone-save"]["mibs"]))
    if rs_ and S("pz-restore"):
        goal("restore faster than zstd -d | partclone.restore", S("pz-restore") / rs_ >= 1.0,
             "zstd | partclone.restore (ESP + root) %.2f s / sysclone restore (whole disk) %.2f s = %.2f×" % (S("pz-restore"), rs_, S("pz-restore") / rs_))
    if rs_ and S("limit-write-used"):
        goal("restore ≥ 0.9× raw write speed", S("limit-write-used") / rs_ >= 0.9,
             "write limit %.2f s / sysclone restore %.2f s = %.2f× (%.0f vs %.0f MiB/s)"
             % (S("limit-write-used"), rs_, S("limit-write-used") / rs_, stats["limit-write-used"]["mibs"], stats["sysclone-restore"]["mibs"]))
    rss = [stats[k]["rss"] for k in stats if k.startswith("sysclone")]
    if rss:
        goal("peak RSS ≤ 128 MiB", max(rss) <= 128, "largest over all sysclone runs: %.1f MiB (GNU time %%M)" % max(rss))
    p("| goal | met | measured |")
    p("|---|---|---|")
    for name, ok, text in g:
        p("| %s | %s | %s |" % (cell(name), "**met**" if ok else "**NOT met**", cell(text)))
    p("")
    if "partclone" in stats and ss:
        used = meta.get("ext4_used_bytes", 0)
        planned = statistics.median(r["bytes_planned"] for r in meta["reports"]["sysclone-smart"])
        p("ext4 share: the root partition's used blocks are %.0f MiB of the %.0f MiB sysclone smart plans for the whole disk (%.0f%%);"
          " the rest is the ESP's used clusters, the partition table and the boot area." % (used / MiB, planned / MiB, 100 * used / planned))
        p("")
    busy = sorted(int(r["busy_pct"]) for rs in runs.values() for r in rs)
    p("CPU busy (by anything) in the 2 s before each timed run: median %d%%, max %d%% over %d runs."
      % (statistics.median(busy), busy[-1], len(busy)))
    text = "\n".join(out) + "\n"
    with open(os.path.join(results, "summary.md"), "w") as f:
        f.write(text)
    with open(os.path.join(results, "summary.json"), "w") as f:
        json.dump({"stats": stats, "goals": [{"goal": n, "met": ok, "measured": t} for n, ok, t in g]}, f, indent=1)
    sys.stdout.write(text)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "fill":
        fill(sys.argv[2], sys.argv[3])
    elif cmd == "summary":
        summary(sys.argv[2])
    else:
        sys.exit("unknown command " + cmd)
