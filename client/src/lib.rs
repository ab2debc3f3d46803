//! Reference end-to-end encrypting client for the messenger backend: a typed REST + WebSocket client and
//! the Olm crypto (vodozemac) that makes the server hold nothing but public keys and ciphertext.
//!
//! Each device has an Olm account; its Curve25519/Ed25519 identity keys, a signed prekey (the Olm fallback
//! key) and one-time keys are published with `PUT /keys`. A message is encrypted once per recipient device
//! (the peer's devices and the sender's own other devices) and sent as per-device `envelopes`; the server's
//! `encrypted_content` only carries a marker. Attachments are encrypted with a random AES-256-GCM key that
//! travels inside the envelopes. Group chats use MLS ([`mls`]): each device keeps MLS key packages
//! published with `PUT /mls/key-packages`, signed with its directory key. Device state is kept encrypted on disk with owner-only permissions.

pub mod api;
pub mod crypto;
pub mod mls;
pub mod store;

mod client;

pub use client::{Client, Event, FileRef, GroupReceived, LoginAs, Received, Socket};
