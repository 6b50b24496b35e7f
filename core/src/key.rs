//! Names of commands, command groups and thread pools.
//!
//! A key is a cheap-to-clone shared string. Hystrix identifies everything by these names: they
//! are the `name`, `group` and `threadPool` fields of the stream and the sections of the
//! configuration file.

use std::{borrow::Borrow, fmt, sync::Arc};

macro_rules! key {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Creates a key from a name.
            pub fn new(name: impl Into<Arc<str>>) -> Self {
                Self(name.into())
            }

            /// The key's name.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(name: &str) -> Self {
                Self::new(name)
            }
        }

        impl From<String> for $name {
            fn from(name: String) -> Self {
                Self::new(name)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

key! {
    /// The name of a command: one dependency call site (Hystrix's `HystrixCommandKey`).
    ///
    /// ```
    /// use hystrix_core::CommandKey;
    /// let key = CommandKey::from("GetUser");
    /// assert_eq!(key.as_str(), "GetUser");
    /// ```
    CommandKey
}

key! {
    /// The group a command reports under; also the default thread pool (Hystrix's
    /// `HystrixCommandGroupKey`).
    GroupKey
}

key! {
    /// The name of a thread pool (Hystrix's `HystrixThreadPoolKey`).
    ThreadPoolKey
}

impl From<&GroupKey> for ThreadPoolKey {
    /// Hystrix's default: a command's pool is named after its group (spec §3.1).
    fn from(group: &GroupKey) -> Self {
        Self(group.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn keys_compare_and_look_up_by_str() {
        let mut map = HashMap::new();
        map.insert(CommandKey::from("a"), 1);
        assert_eq!(map.get("a"), Some(&1));
        assert_eq!(format!("{:?}", CommandKey::from("a")), "\"a\"");
        let pool = ThreadPoolKey::from(&GroupKey::from("users"));
        assert_eq!(pool.as_str(), "users");
    }
}
