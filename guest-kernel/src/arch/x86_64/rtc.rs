//! The CMOS real-time clock (ports 0x70/0x71), read once at boot for the wall-clock time.

use super::cpu::{inb, outb};

fn cmos(reg: u8) -> u8 {
    outb(0x70, reg);
    inb(0x71)
}

/// Seconds since the epoch (UTC), or None when no RTC answers sensibly.
pub fn read_epoch_seconds() -> Option<u64> {
    let status_b = cmos(0x0b);
    if status_b == 0xff {
        return None;
    }
    let bcd = status_b & 0x04 == 0;
    let conv = |v: u8| if bcd { u64::from((v >> 4) * 10 + (v & 0x0f)) } else { u64::from(v) };
    let (sec, min, hour) = (conv(cmos(0x00)), conv(cmos(0x02)), conv(cmos(0x04) & 0x7f));
    let (day, month, year) = (conv(cmos(0x07)), conv(cmos(0x08)), conv(cmos(0x09)));
    let century = match conv(cmos(0x32)) {
        c @ 19..=21 => c,
        _ => 20,
    };
    let year = century * 100 + year;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 59 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86400 + hour * 3600 + min * 60 + sec)
}

/// Days from 1970-01-01 to the given date (proleptic Gregorian calendar).
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
