//! git contexts: kaniko's grammar and `--git` options, fetched with gitoxide.
//!
//! `git://HOST/PATH[#REF[#COMMIT]]` is kaniko's form: as in kaniko it is fetched
//! over HTTPS unless `GIT_PULL_METHOD` says `http` (kiln also takes `git`, the
//! git protocol of `git daemon`). `http(s)://HOST/PATH.git[#REF[#COMMIT]]` is
//! Docker's form and is fetched as written. REF is a branch or tag (short, or a
//! full `refs/…` name, pull requests included); COMMIT a full commit id that must
//! be reachable from REF (or HEAD).

mod checkout;
mod fetch;
mod into_dir;
mod keep;
pub(crate) mod source;
mod submodules;
mod transport;

pub use into_dir::Fetched;
pub use keep::keep_git_dir;
pub use source::{GitCredentials, GitOptions, GitSource};
