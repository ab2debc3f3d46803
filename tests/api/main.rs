//! Integration tests: the whole local stack in-process, real HTTP, the real embedded S3 and a libSQL file.

mod account;
mod admin;
mod auth;
mod avatar;
mod bench;
mod bulk;
mod chats;
mod cli;
mod contacts;
mod durability;
mod e2ee;
mod events;
mod files;
mod keys;
mod limits;
mod load;
mod logs;
mod mls;
mod privacy;
mod processes;
mod realtime;
mod robustness;
mod system;
mod template;
mod themes;
mod users;
