//! Giving up root (Twisted's `twistd --uid`, `--gid` and `--chroot`): after every worker
//! bound its listening ports, and before any of them accepts a connection, the process
//! changes its root folder, its groups, its group and its user, then checks that it cannot
//! become root again.
//!
//! The order matters: ports below 1024 are bound as root; `chroot(2)` needs root; the
//! supplementary groups and the group must be set while the process may still set them
//! (before `setuid`); and `setuid` goes through glibc, which applies it to every thread of
//! the process (the kernel's call changes one thread only).

use std::ffi::CString;
use std::fmt;
use std::path::PathBuf;

use clap::ArgMatches;
use nix::unistd::{self, Gid, Group, Uid, User};

/// A `--uid` value: the user's ID, and its name and primary group when the user database
/// knows it.
#[derive(Debug, Clone)]
pub(crate) struct UserSpec {
    uid: Uid,
    name: Option<String>,
    primary_gid: Option<Gid>,
}

impl fmt::Display for UserSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{name} (uid {})", self.uid),
            None => write!(f, "uid {}", self.uid),
        }
    }
}

/// Parses `--uid`: a user name, or a number (twistd's `uidFromString`).
pub(crate) fn parse_user(s: &str) -> Result<UserSpec, String> {
    let user = match s.parse::<u32>() {
        Ok(n) => User::from_uid(Uid::from_raw(n)).ok().flatten().map_or(
            UserSpec {
                uid: Uid::from_raw(n),
                name: None,
                primary_gid: None,
            },
            spec_of,
        ),
        Err(_) => match User::from_name(s) {
            Ok(Some(user)) => spec_of(user),
            Ok(None) => return Err(format!("no user named '{s}' (give a user name or a uid)")),
            Err(e) => return Err(format!("cannot look up the user '{s}': {e}")),
        },
    };
    Ok(user)
}

fn spec_of(user: User) -> UserSpec {
    UserSpec {
        uid: user.uid,
        name: Some(user.name),
        primary_gid: Some(user.gid),
    }
}

/// Parses `--gid`: a group name, or a number (twistd's `gidFromString`).
pub(crate) fn parse_group(s: &str) -> Result<Gid, String> {
    match s.parse::<u32>() {
        Ok(n) => Ok(Gid::from_raw(n)),
        Err(_) => match Group::from_name(s) {
            Ok(Some(group)) => Ok(group.gid),
            Ok(None) => Err(format!("no group named '{s}' (give a group name or a gid)")),
            Err(e) => Err(format!("cannot look up the group '{s}': {e}")),
        },
    }
}

/// What the runner changes once every port is bound: the root folder, the group, the user.
#[derive(Debug, Clone, Default)]
pub(crate) struct Privileges {
    chroot: Option<PathBuf>,
    user: Option<UserSpec>,
    gid: Option<Gid>,
}

impl Privileges {
    /// The `--chroot`, `--uid` and `--gid` options, checked before anything is bound: the
    /// names were looked up while `/etc` is still reachable, a `--uid` without `--gid`
    /// takes the user's primary group (as twistd), and changing the user or the root folder
    /// needs root.
    pub(crate) fn from_matches(matches: &ArgMatches) -> Result<Privileges, String> {
        let chroot = matches.get_one::<PathBuf>("chroot").cloned();
        let user = matches.get_one::<UserSpec>("uid").cloned();
        let mut gid = matches.get_one::<Gid>("gid").copied();
        if let Some(user) = &user {
            if gid.is_none() {
                gid = Some(user.primary_gid.ok_or_else(|| {
                    format!(
                        "{user} is not in the user database, so it has no group: give --gid too"
                    )
                })?);
            }
        }
        let privileges = Privileges { chroot, user, gid };
        let euid = unistd::geteuid();
        if !euid.is_root() {
            if let Some(user) = privileges
                .user
                .as_ref()
                .filter(|u| u.uid != unistd::getuid())
            {
                return Err(format!(
                    "cannot switch to {user}: only root can, and torsiond runs as uid {euid} (leave out --uid, or start torsiond as root)"
                ));
            }
            if let Some(dir) = &privileges.chroot {
                return Err(format!(
                    "cannot chroot to {}: only root can, and torsiond runs as uid {euid}",
                    dir.display()
                ));
            }
        }
        Ok(privileges)
    }

    /// True when there is nothing to change.
    pub(crate) fn is_empty(&self) -> bool {
        self.chroot.is_none() && self.user.is_none() && self.gid.is_none()
    }

    /// Changes the root folder, the groups and the user of the whole process, then checks
    /// that the change holds: the user and group IDs are the new ones, and `setuid(0)` fails.
    ///
    /// # Errors
    /// A one-line message naming the step that failed.
    pub(crate) fn apply(&self) -> Result<(), String> {
        if let Some(dir) = &self.chroot {
            unistd::chroot(dir)
                .map_err(|e| format!("cannot chroot to {}: {}", dir.display(), e.desc()))?;
            unistd::chdir("/").map_err(|e| {
                format!(
                    "cannot change to / after chroot to {}: {}",
                    dir.display(),
                    e.desc()
                )
            })?;
            tracing::info!(target: "torsiond", "chrooted to {}", dir.display());
        }
        // twistd's switchUID: giving the uid the process already has is a warning, not an
        // error (a non-root torsiond given its own user runs on).
        let switch_user = self.user.as_ref().filter(|u| {
            let same = u.uid == unistd::getuid();
            if same {
                tracing::warn!(
                    target: "torsiond",
                    "--uid {u}: the process is already uid {}; should torsiond have started as root? Continuing",
                    u.uid
                );
            }
            !same
        });
        if let (Some(user), Some(gid)) = (switch_user, self.gid) {
            match &user.name {
                Some(name) => {
                    let c_name = CString::new(name.as_str())
                        .map_err(|_| format!("the user name {name:?} holds a NUL byte"))?;
                    unistd::initgroups(&c_name, gid)
                        .map_err(|e| format!("cannot set the groups of {user}: {}", e.desc()))?;
                }
                None => unistd::setgroups(&[gid]).map_err(|e| {
                    format!("cannot set the supplementary groups to {gid}: {}", e.desc())
                })?,
            }
        }
        if let Some(gid) = self.gid {
            unistd::setgid(gid)
                .map_err(|e| format!("cannot set the group to gid {gid}: {}", e.desc()))?;
        }
        if let Some(user) = switch_user {
            unistd::setuid(user.uid)
                .map_err(|e| format!("cannot switch to {user}: {}", e.desc()))?;
        }
        self.check_thread()?;
        if let Some(user) = switch_user.filter(|u| !u.uid.is_root()) {
            if unistd::setuid(Uid::from_raw(0)).is_ok() {
                return Err(format!(
                    "switched to {user}, yet setuid(0) still succeeds: refusing to run"
                ));
            }
        }
        if let Some(user) = switch_user {
            tracing::info!(
                target: "torsiond",
                "switched to {user}, gid {}",
                self.gid.unwrap_or_else(unistd::getgid)
            );
        } else if let Some(gid) = self.gid {
            tracing::info!(target: "torsiond", "switched to gid {gid}");
        }
        Ok(())
    }

    /// Checks that the calling thread has the user and group asked for (real and
    /// effective): each worker thread calls it after the change.
    ///
    /// # Errors
    /// A one-line message naming the ID that differs.
    pub(crate) fn check_thread(&self) -> Result<(), String> {
        if let Some(user) = &self.user {
            let (real, effective) = (unistd::getuid(), unistd::geteuid());
            if real != user.uid || effective != user.uid {
                return Err(format!(
                    "a thread of torsiond is uid {real} (effective {effective}), not {user}"
                ));
            }
        }
        if let Some(gid) = self.gid {
            let (real, effective) = (unistd::getgid(), unistd::getegid());
            if real != gid || effective != gid {
                return Err(format!(
                    "a thread of torsiond is gid {real} (effective {effective}), not {gid}"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_group, parse_user};

    #[test]
    fn users_and_groups_by_name_or_number() {
        let root = parse_user("root").unwrap();
        assert!(root.uid.is_root());
        assert_eq!(root.name.as_deref(), Some("root"));
        assert_eq!(root.primary_gid.map(|g| g.as_raw()), Some(0));
        let numbered = parse_user("0").unwrap();
        assert_eq!(numbered.name.as_deref(), Some("root"));
        // A uid the user database does not know is taken as it is, without a name.
        let unknown = parse_user("3999999").unwrap();
        assert_eq!(unknown.uid.as_raw(), 3_999_999);
        assert!(unknown.name.is_none() && unknown.primary_gid.is_none());
        assert!(parse_user("no-such-user-here")
            .unwrap_err()
            .contains("no user named 'no-such-user-here'"));
        assert_eq!(parse_group("root").unwrap().as_raw(), 0);
        assert_eq!(parse_group("42").unwrap().as_raw(), 42);
        assert!(parse_group("no-such-group-here").is_err());
    }
}
