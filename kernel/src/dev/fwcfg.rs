//! QEMU's firmware configuration device (fw_cfg), read through its x86 I/O ports. This is how
//! xtask hands the kernel its `key=value` arguments: the bootloader has no command line, and
//! QEMU's `-fw_cfg name=opt/gort/args,file=PATH` puts a file into fw_cfg that we read here.
//!
//! Protocol (QEMU docs/specs/fw_cfg.rst, "Legacy Interface"): write a 16-bit selector key to
//! port 0x510, then read the item's bytes one at a time from port 0x511. Key 0x0000 holds the
//! signature "QEMU"; key 0x0019 the file directory: a big-endian u32 count, then per file a
//! big-endian u32 size, a big-endian u16 selector key, a u16 reserved, a 56-byte NUL-padded name.

use alloc::vec::Vec;
use x86_64::instructions::port::Port;

use crate::sync::IrqLock;

const SELECTOR_PORT: u16 = 0x510;
const DATA_PORT: u16 = 0x511;
const KEY_SIGNATURE: u16 = 0x0000;
const KEY_FILE_DIR: u16 = 0x0019;
const FILE_NAME_LEN: usize = 56;

/// The device is a shared cursor (select, then read): one reader at a time.
static LOCK: IrqLock<()> = IrqLock::new(());

fn select(key: u16) {
    // SAFETY: port 0x510 is fw_cfg's selector on QEMU's PC machines; writing it only moves the
    // device's read cursor. Without the device the write is ignored.
    unsafe { Port::<u16>::new(SELECTOR_PORT).write(key) }
}

fn read_bytes(buf: &mut [u8]) {
    let mut data = Port::<u8>::new(DATA_PORT);
    for b in buf {
        // SAFETY: port 0x511 is fw_cfg's data port; reading it returns the next byte of the
        // selected item (0 past its end, 0xff without the device).
        *b = unsafe { data.read() };
    }
}

/// Whether QEMU's fw_cfg device is present.
pub fn present() -> bool {
    let _g = LOCK.lock();
    select(KEY_SIGNATURE);
    let mut sig = [0u8; 4];
    read_bytes(&mut sig);
    &sig == b"QEMU"
}

/// The contents of the fw_cfg file `name`, or `None` if there is no such file (or no device).
pub fn read_file(name: &str) -> Option<Vec<u8>> {
    if !present() {
        return None;
    }
    let _g = LOCK.lock();
    select(KEY_FILE_DIR);
    let mut count = [0u8; 4];
    read_bytes(&mut count);
    let count = u32::from_be_bytes(count);
    let mut found = None;
    for _ in 0..count {
        let mut entry = [0u8; 8 + FILE_NAME_LEN];
        read_bytes(&mut entry);
        let size = u32::from_be_bytes(entry[0..4].try_into().unwrap());
        let key = u16::from_be_bytes(entry[4..6].try_into().unwrap());
        let raw = &entry[8..];
        let len = raw.iter().position(|&b| b == 0).unwrap_or(FILE_NAME_LEN);
        if &raw[..len] == name.as_bytes() {
            found = Some((key, size));
            // Keep reading nothing more: selecting another key resets the cursor.
            break;
        }
    }
    let (key, size) = found?;
    select(key);
    let mut data = alloc::vec![0u8; size as usize];
    read_bytes(&mut data);
    Some(data)
}

/// Key 0x0005, `FW_CFG_NB_CPUS`: the number of CPUs QEMU was started with (`-smp`), a
/// little-endian u16 (QEMU hw/nvram/fw_cfg.c). An independent witness for the MADT's count.
const KEY_NB_CPUS: u16 = 0x0005;

/// The CPU count QEMU was given, if the device is present.
pub fn cpu_count() -> Option<u16> {
    if !present() {
        return None;
    }
    let _g = LOCK.lock();
    select(KEY_NB_CPUS);
    let mut n = [0u8; 2];
    read_bytes(&mut n);
    Some(u16::from_le_bytes(n))
}
