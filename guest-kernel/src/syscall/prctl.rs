//! prctl: the options programs commonly use (names, parent-death signal, dumpable,
//! no_new_privs, child subreaper, keepcaps, timer slack, the capability bounding set,
//! seccomp's mode, the clear-tid address). Other options are EINVAL, as Linux answers
//! for an option it does not know.

use core::sync::atomic::Ordering::Relaxed;

use super::Ctx;
use crate::errno::*;
use crate::task::attrs::TIMER_SLACK_DEFAULT;
use crate::task::{self, cred, sched};

const PR_SET_PDEATHSIG: u64 = 1;
const PR_GET_PDEATHSIG: u64 = 2;
const PR_GET_DUMPABLE: u64 = 3;
const PR_SET_DUMPABLE: u64 = 4;
const PR_GET_KEEPCAPS: u64 = 7;
const PR_SET_KEEPCAPS: u64 = 8;
const PR_SET_NAME: u64 = 15;
const PR_GET_NAME: u64 = 16;
const PR_GET_SECCOMP: u64 = 21;
const PR_CAPBSET_READ: u64 = 23;
const PR_CAPBSET_DROP: u64 = 24;
const PR_SET_TIMERSLACK: u64 = 29;
const PR_GET_TIMERSLACK: u64 = 30;
const PR_SET_CHILD_SUBREAPER: u64 = 36;
const PR_GET_CHILD_SUBREAPER: u64 = 37;
const PR_SET_NO_NEW_PRIVS: u64 = 38;
const PR_GET_NO_NEW_PRIVS: u64 = 39;
const PR_GET_TID_ADDRESS: u64 = 40;

pub fn prctl(c: &mut Ctx) -> KResult<u64> {
    let [option, arg2, arg3, arg4, arg5, _] = c.a;
    let me = sched::current();
    let process = &me.process;
    let put_int = |v: u32| task::write_user(arg2, &v).map(|()| 0);
    match option {
        PR_SET_PDEATHSIG => {
            if arg2 > 64 {
                return Err(EINVAL);
            }
            process.attrs.pdeath_signal.store(arg2 as u32, Relaxed);
            Ok(0)
        }
        PR_GET_PDEATHSIG => put_int(process.attrs.pdeath_signal.load(Relaxed)),
        PR_GET_DUMPABLE => Ok(u64::from(process.attrs.dumpable.load(Relaxed))),
        PR_SET_DUMPABLE => {
            if arg2 > 1 {
                return Err(EINVAL);
            }
            process.attrs.dumpable.store(arg2 as u8, Relaxed);
            Ok(0)
        }
        PR_GET_KEEPCAPS => Ok(u64::from(cred::current().keep_caps)),
        PR_SET_KEEPCAPS => {
            if arg2 > 1 {
                return Err(EINVAL);
            }
            let mut new = (*cred::current()).clone();
            new.keep_caps = arg2 == 1;
            cred::commit(new);
            Ok(0)
        }
        PR_SET_NAME => {
            // Up to 15 bytes or the first NUL, as strncpy_from_user(.., 15).
            let mut name = [0u8; 15];
            for (i, b) in name.iter_mut().enumerate() {
                *b = task::read_user(arg2 + i as u64)?;
                if *b == 0 {
                    break;
                }
            }
            me.attrs.set_comm(&name);
            Ok(0)
        }
        PR_GET_NAME => task::write_user(arg2, &me.attrs.comm()).map(|()| 0),
        // Seccomp is not implemented: every process is in mode 0 (SECCOMP_MODE_DISABLED).
        PR_GET_SECCOMP => Ok(0),
        PR_CAPBSET_READ => {
            if arg2 > u64::from(cred::CAP_LAST_CAP) {
                return Err(EINVAL);
            }
            Ok(cred::current().cap_bset >> arg2 & 1)
        }
        PR_CAPBSET_DROP => {
            let old = cred::current();
            if !old.capable(cred::CAP_SETPCAP) {
                return Err(EPERM);
            }
            if arg2 > u64::from(cred::CAP_LAST_CAP) {
                return Err(EINVAL);
            }
            let mut new = (*old).clone();
            new.cap_bset &= !(1 << arg2);
            cred::commit(new);
            Ok(0)
        }
        PR_SET_TIMERSLACK => {
            let slack = if (arg2 as i64) <= 0 { TIMER_SLACK_DEFAULT } else { arg2 };
            me.attrs.timer_slack.store(slack, Relaxed);
            Ok(0)
        }
        PR_GET_TIMERSLACK => Ok(me.attrs.timer_slack.load(Relaxed)),
        PR_SET_CHILD_SUBREAPER => {
            process.attrs.subreaper.store(arg2 != 0, Relaxed);
            Ok(0)
        }
        PR_GET_CHILD_SUBREAPER => put_int(u32::from(process.attrs.subreaper.load(Relaxed))),
        PR_SET_NO_NEW_PRIVS => {
            if arg2 != 1 || arg3 != 0 || arg4 != 0 || arg5 != 0 {
                return Err(EINVAL);
            }
            process.attrs.no_new_privs.store(true, Relaxed);
            Ok(0)
        }
        PR_GET_NO_NEW_PRIVS => {
            if arg2 != 0 || arg3 != 0 || arg4 != 0 || arg5 != 0 {
                return Err(EINVAL);
            }
            Ok(u64::from(process.attrs.no_new_privs.load(Relaxed)))
        }
        PR_GET_TID_ADDRESS => task::write_user(arg2, &me.clear_child_tid.load(Relaxed)).map(|()| 0),
        _ => Err(EINVAL),
    }
}
