import re, glob
base = glob.glob('/root/.cargo/registry/src/*/libc-0.2.191/src/unix/linux_like/linux/gnu/')[0]
def parse(path, x32=False):
    out = {}
    for m in re.finditer(r'pub const SYS_(\w+): c_long = (__X32_SYSCALL_BIT \+ )?(\d+);', open(path).read()):
        n = int(m.group(3)) + (0x40000000 if m.group(2) else 0)
        out[m.group(1)] = n
    return out
t = {
 'X86_64': parse(base + 'b64/x86_64/not_x32.rs'),
 'X32': parse(base + 'b64/x86_64/x32.rs'),
 'X86': parse(base + 'b32/x86/mod.rs'),
}
def header(h):
    txt = open(f'/usr/include/x86_64-linux-gnu/asm/unistd_{h}.h').read()
    return {k: int(eval(v.replace('__X32_SYSCALL_BIT', '0x40000000'))) for k, v in re.findall(r'#define __NR_(\w+) (.+)', txt)}
for name, h in [('X86_64', '64'), ('X86', '32'), ('X32', 'x32')]:
    for k, v in header(h).items():
        assert t[name].get(k, v) == v, (name, k)
        t[name][k] = v
# Syscalls newer than libc 0.2.191's tables (Linux 6.13-6.17): same number on every ABI (x32: + X32 bit).
newer = {'setxattrat': 463, 'getxattrat': 464, 'listxattrat': 465, 'removexattrat': 466,
         'open_tree_attr': 467, 'file_getattr': 468, 'file_setattr': 469}
for k, v in newer.items():
    t['X86_64'].setdefault(k, v); t['X86'].setdefault(k, v); t['X32'].setdefault(k, v + 0x40000000)
t['X86_64'].setdefault('uretprobe', 335)
o = ['//! Syscall name → number tables of the x86 family (x86_64, i386, x32), sorted by name for',
     '//! binary search. GENERATED from Debian 12 linux-libc-dev 6.1 `asm/unistd_{64,32,x32}.h`, the',
     '//! `SYS_*` constants of libc 0.2.191 (gnu x86_64/not_x32.rs, x86_64/x32.rs, b32/x86/mod.rs)',
     '//! and Linux 6.13–6.17 additions (463–469, uretprobe), by `gen_tables.py` beside this file;',
     '//! regenerate rather than edit. x32 numbers include `__X32_SYSCALL_BIT` (0x4000_0000).',
     '']
for name, d in t.items():
    items = sorted(d.items())
    o.append(f'/// {name} syscalls ({len(items)}).')
    o.append('#[rustfmt::skip]')
    o.append(f'pub(super) static {name}: &[(&str, u32)] = &[')
    line = '   '
    for k, v in items:
        e = f' ("{k}", {v}),'
        if len(line) + len(e) > 110:
            o.append(line); line = '   '
        line += e
    o.append(line); o.append('];'); o.append('')
open(__import__('os').path.join(__import__('os').path.dirname(__import__('os').path.abspath(__file__)), 'tables.rs'), 'w').write('\n'.join(o))
print({k: len(v) for k, v in t.items()})
