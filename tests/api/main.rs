//! Integration tests: the whole local stack in-process, real HTTP, the real embedded S3 and a libSQL file.

mod auth;
mod avatar;
mod chats;
mod events;
mod privacy;
mod realtime;
mod robustness;
mod system;
mod users;
