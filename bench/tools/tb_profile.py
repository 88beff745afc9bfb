#!/usr/bin/env python3
r"""Guest instructions per operation, attributed to kernel functions, from two QEMU TCG logs.

Run the same image twice under `-icount shift=0,sleep=off -d exec,nochain,in_asm -D LOG`
(add these to the QEMU command `./x run` builds): once with the operation repeated 0 times and
once N times. Every executed translation block is logged (`nochain` keeps QEMU from chaining
blocks past the log) and `in_asm` gives each block's instructions, so the difference of the two
runs, divided by N, is the exact instruction count of one operation per kernel function
(instructions outside the image's symbols count as `user`, the C program). This is how the
file-system hot paths were taken apart (issue 15: stat, 4 KiB reads).

    tb_profile.py IMAGE_ELF BASE_LOG RUN_LOG N [TOP]         per function, TOP rows (40)
    tb_profile.py IMAGE_ELF BASE_LOG RUN_LOG N --annotate F  per instruction of function F

IMAGE_ELF: the ELF with symbols (x86_64: the image itself; aarch64: the ELF beside the Image).

A recipe (x86_64, ext2 on virtio-blk; `bench/c/fs_hot_loop.c` is the loop, its header lists
the modes):

    musl-gcc -O2 -static -o /tmp/loop bench/c/fs_hot_loop.c
    ./x disk create /tmp/disk.img --size 160M --block-size 4096
    ./x run --elf /tmp/loop --machine q35 --mem 256M --disk /tmp/disk.img \
        --cmdline "mount=ext2:vda:/bench blk_timeout=0 blk_cache=64M" -- stat 1 /bench
    KERNEL=$(ls -t target/guest/x86_64-unknown-none/release/packed-*-elf-runner | head -1)
    for n in 0 1000; do
      ./x disk create /tmp/disk.img --size 160M --block-size 4096
      qemu-system-x86_64 -M q35 -bios /usr/share/qemu/qboot.rom -accel tcg \
        -icount shift=0,sleep=off -m 512M -nodefaults -display none -serial stdio \
        -no-reboot -device isa-debug-exit,iobase=0xf4,iosize=4 -kernel $KERNEL \
        -append "mount=ext2:vda:/bench blk_timeout=0 blk_cache=192M -- /bin/loop stat $n /bench" \
        -drive file=/tmp/disk.img,if=none,id=disk0,format=raw \
        -device virtio-blk-pci,drive=disk0,disable-legacy=on \
        -d exec,nochain,in_asm -D /tmp/stat-$n.log
    done
    bench/tools/tb_profile.py $KERNEL /tmp/stat-0.log /tmp/stat-1000.log 1000

(the logs take about 100 MB per 1000 stats, 3 GB for 2000 random reads of a 64 MiB file).
"""
import bisect
import collections
import subprocess
import sys


def executions(path):
    """{block start pc: instructions executed in it} and {block start pc: its instruction pcs}."""
    counts, blocks = collections.Counter(), {}
    current = None
    with open(path, errors="replace") as log:
        for line in log:
            if line.startswith("IN:"):
                current = []
            elif current is not None and line.startswith("0x"):
                current.append(int(line.split(":")[0], 16))
            elif line.startswith("Trace"):
                if current:
                    blocks[current[0]] = current
                current = None
                pc = int(line.split("[")[1].split("/")[1], 16)
                counts[pc] += len(blocks.get(pc, [pc]))
            elif current and line.startswith("---"):
                blocks[current[0]] = current
                current = None
    return counts, blocks


def symbols(elf):
    table = []
    for line in subprocess.run(["nm", "-n", "--demangle", elf], capture_output=True, text=True, check=True).stdout.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1] in "tTwW":
            table.append((int(parts[0], 16), parts[2]))
    starts = [start for start, _ in table]
    end = table[-1][0] + 0x10000 if table else 0

    def name(pc):
        i = bisect.bisect_right(starts, pc) - 1
        return table[i][1] if i >= 0 and pc < end else "user"
    return name


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    elf, base_log, run_log, n = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    base, _ = executions(base_log)
    run, blocks = executions(run_log)
    if len(sys.argv) > 6 and sys.argv[5] == "--annotate":
        per_insn = collections.Counter()
        for pc in set(base) | set(run):
            insns = blocks.get(pc, [pc])
            for insn in insns:
                per_insn[insn] += (run[pc] - base[pc]) / len(insns) / n
        listing = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-C", elf], capture_output=True, text=True, check=True).stdout
        inside = False
        for line in listing.splitlines():
            if line.endswith(">:"):
                inside = sys.argv[6] in line
                if inside:
                    print(line)
            elif inside and ":" in line:
                try:
                    at = int(line.split(":")[0], 16)
                except ValueError:
                    continue
                print(f"{per_insn.get(at, 0):7.2f} {line}")
        return
    name = symbols(elf)
    by_function = collections.Counter()
    for pc in set(base) | set(run):
        by_function[name(pc)] += (run[pc] - base[pc]) / n
    print(f"total per operation: {sum(by_function.values()):.1f}")
    for function, count in by_function.most_common(int(sys.argv[5]) if len(sys.argv) > 5 else 40):
        if abs(count) >= 0.5:
            print(f"{count:9.1f}  {function}")


if __name__ == "__main__":
    main()
