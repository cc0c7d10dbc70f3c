# gdb extension for rt-core (issue 16): `info goroutines` and `goroutine N bt`, modelled on
# Go's src/runtime/runtime-gdb.py. Loaded by `cargo xtask gdb` (xtask/src/gdb.rs).
#
# Where it starts: the static RT_CORE_SCHED (rt-core/src/run.rs), the running runtime;
# its `allgs` holds the slabs of every G. A G's gobuf (`sched`: sp, pc, bp) says where a
# parked or runnable goroutine stands; its frames are walked by the frame-pointer chain, as
# rt-core/src/traceback/mod.rs walks them, bounded by the G's stack [lo, hi).

import gdb

# rt-core/src/status.rs GStatus values and Go's names for them.
STATUS = {0: "idle", 1: "runnable", 2: "running", 3: "syscall", 4: "waiting", 6: "dead",
          8: "copystack", 9: "preempted"}
# rt-core/src/g.rs WaitReason, in declaration order.
WAIT = ["", "sync.WaitGroup.Wait", "chan send", "chan receive", "chan send (nil chan)",
        "chan receive (nil chan)", "select", "select (no cases)", "sleep", "sync.Mutex.Lock",
        "IO wait", "other"]
MAX_FRAMES = 100


def atomic(v):
    """The value inside an Atomic* (core's atomics wrap it: v.value or v.v, an UnsafeCell)."""
    for _ in range(4):
        t = v.type.strip_typedefs()
        if t.code in (gdb.TYPE_CODE_INT, gdb.TYPE_CODE_PTR, gdb.TYPE_CODE_BOOL):
            return v
        fields = [f.name for f in t.fields()]
        if not fields:
            return v
        v = v[fields[0]]
    return v


def slabs():
    """Every G slab of the running runtime, as (pointer to first G, length)."""
    sched = None
    for name in ("rt_core::run::RT_CORE_SCHED", "RT_CORE_SCHED"):
        sym = gdb.lookup_global_symbol(name) or gdb.lookup_static_symbol(name)
        if sym is not None:
            sched = sym.value()
            break
    if sched is None:
        sched = gdb.parse_and_eval("rt_core::run::RT_CORE_SCHED")
    p = atomic(sched)
    if int(p) == 0:
        raise gdb.GdbError("no rt-core runtime is running (RT_CORE_SCHED is null)")
    allgs = p.dereference()["allgs"]
    vec = allgs["value"]["value"] if "value" in [f.name for f in allgs.type.fields()] else allgs
    # alloc::vec::Vec<*mut [G]>: buf.inner.ptr / len; read through gdb's Rust printer fields.
    length = int(vec["len"])
    buf = vec["buf"]["inner"]["ptr"]
    ptr = buf
    while ptr.type.strip_typedefs().code != gdb.TYPE_CODE_PTR:
        ptr = ptr[ptr.type.fields()[0].name]
    out = []
    elem = ptr.cast(gdb.lookup_type("u64").pointer())
    for i in range(length):
        data = int(elem[2 * i])
        n = int(elem[2 * i + 1])
        out.append((data, n))
    return out


def gtype():
    return gdb.lookup_type("rt_core::g::G")


def all_gs():
    t = gtype()
    for data, n in slabs():
        base = gdb.Value(data).cast(t.pointer())
        for i in range(n):
            yield base[i]


def where(pc):
    block = gdb.block_for_pc(pc)
    fn = None
    while block is not None and fn is None:
        fn = block.function
        block = block.superblock
    sal = gdb.find_pc_line(pc)
    name = fn.print_name if fn is not None else "??"
    loc = "%s:%d" % (sal.symtab.filename, sal.line) if sal.symtab is not None else "?"
    return name, loc


def frames(g):
    """(pc, is_return_address) of a suspended G, innermost first."""
    sched = g["sched"]
    pc, bp, sp = int(sched["pc"]), int(sched["bp"]), int(sched["sp"])
    lo, hi = int(g["stack"]["lo"]), int(g["stack"]["hi"])
    inf = gdb.selected_inferior()
    out = [(pc, True)]
    floor = max(lo, sp)
    while bp != 0 and len(out) < MAX_FRAMES:
        if bp % 8 or bp < floor or bp + 16 > hi:
            out.append(("stack walk stopped: frame pointer %#x outside [%#x, %#x)" % (bp, lo, hi), False))
            break
        mem = inf.read_memory(bp, 16).tobytes()
        nbp = int.from_bytes(mem[:8], "little")
        ret = int.from_bytes(mem[8:], "little")
        if nbp != 0 and nbp <= bp:
            break
        out.append((ret, True))
        bp = nbp
    return out


class InfoGoroutines(gdb.Command):
    """info goroutines: every goroutine of the running rt-core runtime (id, status, M, where)."""

    def __init__(self):
        super().__init__("info goroutines", gdb.COMMAND_STACK, gdb.COMPLETE_NONE)

    def invoke(self, arg, from_tty):
        for g in all_gs():
            goid = int(atomic(g["goid"]))
            status = int(atomic(g["atomicstatus"]))
            if goid == 0 or status in (0, 6):
                continue
            st = STATUS.get(status, str(status))
            if status == 4:
                r = int(atomic(g["waitreason"]))
                st = "waiting (%s)" % (WAIT[r] if r < len(WAIT) else r)
            m = atomic(g["m"])
            mid = "M%d" % int(m.dereference()["id"]) if int(m) != 0 else "-"
            if status == 2:
                print("* %4d %-26s %-4s running on %s" % (goid, st, mid, mid))
                continue
            pc = int(g["sched"]["pc"])
            # The first frame outside rt-core: where the goroutine stands in its own code.
            shown = None
            for fpc, ret in frames(g):
                if isinstance(fpc, str):
                    break
                name, loc = where(fpc - 1 if ret else fpc)
                if not name.startswith(("rt_core::", "core::", "alloc::", "<")):
                    shown = "%s at %s" % (name, loc)
                    break
            if shown is None:
                name, loc = where(pc - 1)
                shown = "%s at %s" % (name, loc)
            print("  %4d %-26s %-4s %s" % (goid, st, mid, shown))


class GoroutineCmd(gdb.Command):
    """goroutine N bt: the frames of goroutine N, walked from its gobuf."""

    def __init__(self):
        super().__init__("goroutine", gdb.COMMAND_STACK, gdb.COMPLETE_NONE)

    def invoke(self, arg, from_tty):
        parts = arg.split()
        if len(parts) < 2 or parts[1] != "bt":
            raise gdb.GdbError("usage: goroutine N bt")
        want = int(parts[0])
        for g in all_gs():
            if int(atomic(g["goid"])) != want:
                continue
            if int(atomic(g["atomicstatus"])) == 2:
                print("goroutine %d is running: use bt on its CPU (info threads)" % want)
                return
            for i, (pc, ret) in enumerate(frames(g)):
                if isinstance(pc, str):
                    print(pc)
                    break
                name, loc = where(pc - 1 if ret else pc)
                print("#%-2d 0x%016x in %s at %s" % (i, pc, name, loc))
            return
        raise gdb.GdbError("no goroutine %d" % want)


InfoGoroutines()
GoroutineCmd()
