//! A tiny test runner and the `check*!` macros.
//!
//! A test is `fn() -> TestResult`. The runner prints one line per test,
//! `test NAME ... ok` or `test NAME ... FAILED: reason`, then `N passed, M failed`, and
//! returns M. The name is printed before the test runs, so a test that hangs is named.
//!
//! The macros return a [`Failure`] naming the expression, what was expected, what came
//! back, and the source line:
//!
//! ```text
//! check!(cond)                 check failed: cond
//! check_eq!(actual, expected)  actual: expected E, got A
//! check_ok!(result)            the Ok value, or: result: expected Ok, got Err(EBADF)
//! check_err!(result, ENOENT)   result: expected Err(ENOENT), got Ok(3)
//! fail!("fmt", args...)        the formatted text
//! ```

use core::fmt;

use crate::io::StackStr;
use crate::print;

/// Why a test failed: one line of text ending in ` at FILE:LINE`.
pub struct Failure(StackStr<320>);

impl Failure {
    /// Records `args` at `file:line` (only the file's base name is kept).
    pub fn new(file: &str, line: u32, args: fmt::Arguments<'_>) -> Self {
        let base = file.rsplit('/').next().unwrap_or(file);
        Failure(StackStr::from_fmt(format_args!("{args} at {base}:{line}")))
    }

    pub fn message(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// What a test returns.
pub type TestResult = Result<(), Failure>;

/// A named test.
pub type Test = (&'static str, fn() -> TestResult);

/// Runs groups of tests, counting results. With filters, a test runs only if one of them
/// is its group (`fs`), its full name (`fs::dup_returns_lowest_free_fd`) or a prefix of
/// it ending in or containing `::` (`fs::dup`).
pub struct Runner<'a> {
    filters: &'a [&'a str],
    passed: usize,
    failed: usize,
}

impl<'a> Runner<'a> {
    /// A runner that runs the tests `filters` selects (all of them if it is empty).
    pub fn new(filters: &'a [&'a str]) -> Self {
        Runner {
            filters,
            passed: 0,
            failed: 0,
        }
    }

    fn selected(&self, full: &str) -> bool {
        self.filters.is_empty()
            || self.filters.iter().any(|f| {
                full.starts_with(f) && (f.contains("::") || full[f.len()..].starts_with("::"))
            })
    }

    /// Runs the selected tests of `group`, named `GROUP::NAME` (just `NAME` if `group`
    /// is empty).
    pub fn group(&mut self, group: &str, tests: &[Test]) {
        for (name, test) in tests {
            let full = match group {
                "" => StackStr::<128>::from_fmt(format_args!("{name}")),
                _ => StackStr::<128>::from_fmt(format_args!("{group}::{name}")),
            };
            if !self.selected(full.as_str()) {
                continue;
            }
            print!("test {full} ... ");
            match test() {
                Ok(()) => {
                    self.passed += 1;
                    print!("ok\n");
                }
                Err(why) => {
                    self.failed += 1;
                    print!("FAILED: {}\n", why.message());
                }
            }
        }
    }

    /// Prints `N passed, M failed`; returns M.
    pub fn finish(self) -> i32 {
        print!("{} passed, {} failed\n", self.passed, self.failed);
        self.failed as i32
    }
}

/// Runs every test in `tests`; returns the number that failed.
pub fn run(tests: &[Test]) -> i32 {
    let mut runner = Runner::new(&[]);
    runner.group("", tests);
    runner.finish()
}

/// Fails the test with a formatted message.
#[macro_export]
macro_rules! fail {
    ($($arg:tt)*) => {
        return Err($crate::test::Failure::new(file!(), line!(), format_args!($($arg)*)))
    };
}

/// Fails unless `cond` holds; optional text says more.
#[macro_export]
macro_rules! check {
    ($cond:expr $(,)?) => {
        if !$cond {
            $crate::fail!("check failed: {}", stringify!($cond));
        }
    };
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            $crate::fail!("check failed: {}: {}", stringify!($cond), format_args!($($arg)+));
        }
    };
}

/// Fails unless `actual == expected`, printing both with `{:?}`.
#[macro_export]
macro_rules! check_eq {
    ($actual:expr, $expected:expr $(,)?) => {
        match (&$actual, &$expected) {
            (actual, expected) => {
                if *actual != *expected {
                    $crate::fail!(
                        "{}: expected {:?}, got {:?}",
                        stringify!($actual),
                        expected,
                        actual
                    );
                }
            }
        }
    };
}

/// Evaluates to the `Ok` value of a `Result`, or fails naming the error.
#[macro_export]
macro_rules! check_ok {
    ($result:expr $(,)?) => {
        match $result {
            Ok(value) => value,
            Err(err) => $crate::fail!("{}: expected Ok, got Err({:?})", stringify!($result), err),
        }
    };
}

/// Fails unless a `Result<_, Errno>` is `Err(Errno::NAME)`.
#[macro_export]
macro_rules! check_err {
    ($result:expr, $errno:ident $(,)?) => {
        match $result {
            Err(err) if err == $crate::Errno::$errno => {}
            other => $crate::fail!(
                "{}: expected Err({}), got {:?}",
                stringify!($result),
                stringify!($errno),
                other
            ),
        }
    };
}
