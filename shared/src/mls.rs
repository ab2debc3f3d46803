//! What the Delivery Service reads of MLS messages (API.md §15): the plaintext header of handshake and
//! application messages, parsed with `openmls`. No group secret and no signature check: membership crypto is
//! the clients' job, the server orders and routes.

use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::{ContentType, MlsMessageBodyIn, MlsMessageIn};

use crate::error::ApiError;
use wire::ErrorCode;

/// The plaintext header of a `PublicMessage` or `PrivateMessage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The MLS group id.
    pub group_id: Vec<u8>,
    /// The epoch it was made in.
    pub epoch: u64,
    /// What it carries.
    pub kind: Kind,
}

/// The content type of a protocol message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An application message.
    Application,
    /// A proposal.
    Proposal,
    /// A commit.
    Commit,
}

/// Parses an `MLSMessage` that must be a `PublicMessage` or `PrivateMessage` of a member (not of an external
/// sender); anything else is 400 `invalid_mls_message`.
pub fn protocol_header(bytes: &[u8]) -> Result<Header, ApiError> {
    let invalid = || ApiError::code(ErrorCode::InvalidMlsMessage);
    let message = MlsMessageIn::tls_deserialize_exact(bytes).map_err(|_| invalid())?;
    let message = message.try_into_protocol_message().map_err(|_| invalid())?;
    if message.is_external() {
        return Err(invalid());
    }
    let kind = match message.content_type() {
        ContentType::Application => Kind::Application,
        ContentType::Proposal => Kind::Proposal,
        ContentType::Commit => Kind::Commit,
    };
    Ok(Header { group_id: message.group_id().as_slice().to_vec(), epoch: message.epoch().as_u64(), kind })
}

/// Whether `bytes` is an `MLSMessage` carrying a `Welcome`.
pub fn is_welcome(bytes: &[u8]) -> bool {
    MlsMessageIn::tls_deserialize_exact(bytes).is_ok_and(|m| matches!(m.extract(), MlsMessageBodyIn::Welcome(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_invalid_mls_message_and_never_a_panic() {
        for bytes in [&b""[..], b"\x00\x01", b"\x00\x01\x00\x05\x01\x02", &[0xff; 64]] {
            assert_eq!(protocol_header(bytes).unwrap_err().error_code(), ErrorCode::InvalidMlsMessage);
            assert!(!is_welcome(bytes));
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = protocol_header(&bytes);
            let _ = is_welcome(&bytes);
        }
    }
}
