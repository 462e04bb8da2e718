//! OM integration tests: a real OM started in-process on port 0, a fake SCM served as a real
//! tonic `ScmClientService`, and the real `om-client`.

mod buckets;
mod common;
mod deletion;
mod ha;
mod keys;
mod leaks;
mod links;
mod listing;
mod multipart;
mod redirect;
mod restart;
