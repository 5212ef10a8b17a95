//! A CMOS real-time clock (MC146818-style) at ports 0x70 (index) and 0x71 (data), enough
//! for a guest to read the wall-clock time: binary mode, 24-hour, UTC, never updating.

use std::time::{SystemTime, UNIX_EPOCH};

pub const INDEX_PORT: u16 = 0x70;
pub const DATA_PORT: u16 = 0x71;

#[derive(Default)]
pub struct Rtc {
    index: u8,
}

/// (year, month, day) of `days` since 1970-01-01 (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The value of CMOS register `reg` at `secs` seconds since the epoch.
fn register(reg: u8, secs: i64) -> u8 {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    match reg {
        0x00 => (rem % 60) as u8,
        0x02 => (rem / 60 % 60) as u8,
        0x04 => (rem / 3600) as u8,
        0x06 => ((days + 4).rem_euclid(7) + 1) as u8, // 1970-01-01 was a Thursday
        0x07 => day as u8,
        0x08 => month as u8,
        0x09 => (year % 100) as u8,
        0x0a => 0x26, // no update in progress, 32.768 kHz base
        0x0b => 0x06, // binary, 24-hour
        0x0d => 0x80, // battery good
        0x32 => (year / 100) as u8,
        _ => 0,
    }
}

impl Rtc {
    pub fn write(&mut self, port: u16, value: u8) {
        if port == INDEX_PORT {
            self.index = value & 0x7f; // bit 7 masks NMIs on real hardware
        }
    }

    pub fn read(&self, port: u16) -> u8 {
        if port != DATA_PORT {
            return 0xff;
        }
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        register(self.index, secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        // 2026-11-27 12:34:56 UTC
        let t = 1_795_782_896;
        let regs: Vec<u8> = [0x32, 0x09, 0x08, 0x07, 0x04, 0x02, 0x00].iter().map(|&r| register(r, t)).collect();
        assert_eq!(regs, [20, 26, 11, 27, 12, 34, 56]);
        assert_eq!(register(0x06, t), 6); // a Friday
    }
}
