//! The JSON wire types of the messenger API (API.md): one request and one response type per REST endpoint
//! with the endpoint's metadata beside them, the WebSocket actions and events, and the error codes.
//!
//! serde (and utoipa's schema derives) only: the server, the `messenger` client and the benchmark share these
//! types without linking any server code. The OpenAPI document is generated from them ([`openapi::document`]).

#![warn(missing_docs)]

pub mod auth;
pub mod chats;
pub mod contacts;
pub mod endpoint;
pub mod error;
pub mod files;
pub mod keys;
pub mod mls;
pub mod objects;
pub mod openapi;
pub mod system;
pub mod themes;
pub mod users;
pub mod ws;

pub use endpoint::{Empty, Endpoint, EndpointInfo, Input, Method, Output, info};
pub use error::{ErrorBody, ErrorCode, FieldError};
pub use objects::{
    AvatarFrameId, AvatarVisibility, Message, MessageText, MessageType, PhoneVisibility, TokenResponse, User,
};

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

/// A `multipart/form-data` upload: the part named `file`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FileUpload {
    /// The file's bytes.
    #[schema(value_type = String, format = Binary, content_media_type = "application/octet-stream")]
    pub file: Vec<u8>,
    /// The client's file name, if it sent one (never trusted for the type).
    #[serde(default, skip)]
    #[schema(ignore)]
    pub filename: Option<String>,
}

/// Deserializes a field that may be absent (outer `None`), null (`Some(None)`) or a value.
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Parses the wire form of a unit enum variant by its serde name (`"contacts"` → `AvatarVisibility::Contacts`).
pub fn parse_str<T: serde::de::DeserializeOwned>(text: &str) -> Option<T> {
    use serde::de::IntoDeserializer as _;
    T::deserialize(text.into_deserializer()).map_err(|_: serde::de::value::Error| ()).ok()
}

/// The stored and wire names of a closed set (an enum whose serde form is its lower-case name): `parse`, through
/// serde so that both agree, and a `const` `as_str` listing each name once.
macro_rules! names {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every member.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// Parses the stored and wire form, exactly as written.
            pub fn parse(text: &str) -> Option<Self> {
                $crate::parse_str(text)
            }

            /// The stored and wire form.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)+
                }
            }
        }
    };
}
pub(crate) use names;

/// Every REST endpoint of the contract.
pub fn endpoints() -> Vec<EndpointInfo> {
    use crate::{
        auth as a, chats as c, contacts as k, files as f, keys as e, mls as m, system as s, themes as t, users as u,
    };
    vec![
        info::<a::Register>(),
        info::<a::Login>(),
        info::<a::ChangePassword>(),
        info::<u::GetMe>(),
        info::<u::SetUsername>(),
        info::<u::CheckAvailability>(),
        info::<u::UpdateProfile>(),
        info::<u::SetBio>(),
        info::<u::SetBirthdate>(),
        info::<u::ListUsers>(),
        info::<u::SearchUsers>(),
        info::<u::GetProfile>(),
        info::<u::GetPrivacy>(),
        info::<u::UpdatePrivacy>(),
        info::<u::SetAvatarFrame>(),
        info::<u::SetPresetAvatar>(),
        info::<u::UploadAvatar>(),
        info::<u::DeleteAccount>(),
        info::<f::UploadFile>(),
        info::<f::PresignUpload>(),
        info::<t::CreateTheme>(),
        info::<t::ListThemes>(),
        info::<t::UpdateTheme>(),
        info::<t::DeleteTheme>(),
        info::<k::SetLocalName>(),
        info::<k::DeleteLocalName>(),
        info::<e::UploadKeys>(),
        info::<e::CountKeys>(),
        info::<e::ListDevices>(),
        info::<e::ClaimKeys>(),
        info::<e::DeleteDevice>(),
        info::<e::ExchangeKey>(),
        info::<m::UploadKeyPackages>(),
        info::<m::CountKeyPackages>(),
        info::<m::ClaimKeyPackages>(),
        info::<m::CreateGroup>(),
        info::<m::ListGroups>(),
        info::<m::GetGroup>(),
        info::<m::RenameGroup>(),
        info::<m::LeaveGroup>(),
        info::<m::CommitGroup>(),
        info::<m::ListCommits>(),
        info::<m::ListWelcomes>(),
        info::<m::AckWelcome>(),
        info::<m::ListGroupMessages>(),
        info::<c::ListActiveChats>(),
        info::<c::ListMessages>(),
        info::<c::ClearChat>(),
        info::<c::DeleteMessage>(),
        info::<c::MarkRead>(),
        info::<c::ListMedia>(),
        info::<s::Root>(),
        info::<s::Test>(),
        info::<s::Health>(),
        info::<s::ListPresetAvatars>(),
        info::<s::ListAvatarFrames>(),
        info::<s::OpenApi>(),
        info::<s::Docs>(),
    ]
}

#[cfg(test)]
mod tests {

    #[test]
    fn closed_sets_name_each_member_as_serde_does() {
        fn check<T>(all: &[T], as_str: fn(T) -> &'static str, parse: fn(&str) -> Option<T>)
        where
            T: Copy + PartialEq + std::fmt::Debug + serde::Serialize,
        {
            for &member in all {
                let name = as_str(member);
                assert_eq!(serde_json::to_value(member).unwrap(), name, "{member:?}");
                assert_eq!(parse(name), Some(member));
                assert_eq!(parse(&name.to_uppercase()), None, "exactly as written");
            }
        }
        use crate::objects::{AvatarFrameId, AvatarVisibility, MessageType, PhoneVisibility};
        use crate::themes::Brightness;
        check(AvatarFrameId::ALL, AvatarFrameId::as_str, AvatarFrameId::parse);
        check(MessageType::ALL, MessageType::as_str, MessageType::parse);
        check(AvatarVisibility::ALL, AvatarVisibility::as_str, AvatarVisibility::parse);
        check(PhoneVisibility::ALL, PhoneVisibility::as_str, PhoneVisibility::parse);
        check(Brightness::ALL, Brightness::as_str, Brightness::parse);
    }

    use super::*;

    #[test]
    fn method_and_path_pairs_and_operation_ids_are_unique() {
        let mut routes = std::collections::HashSet::new();
        let mut ops = std::collections::HashSet::new();
        for e in endpoints() {
            assert!(routes.insert((e.method, e.path)), "duplicate route {e:?}");
            assert!(ops.insert(e.operation_id), "duplicate operation id {e:?}");
        }
    }

    #[test]
    fn a_number_where_a_string_is_expected_is_refused() {
        let body = r#"{"first_name":"A","last_name":"B","phone":15550100001,"password":"long enough"}"#;
        assert!(serde_json::from_str::<auth::RegisterRequest>(body).is_err());
    }

    #[test]
    fn enum_wire_forms_round_trip_through_their_serde_names() {
        for v in [AvatarVisibility::All, AvatarVisibility::Contacts, AvatarVisibility::Nobody, AvatarVisibility::Except]
        {
            assert_eq!(AvatarVisibility::parse(v.as_str()), Some(v));
            assert_eq!(serde_json::to_value(v).unwrap(), v.as_str());
        }
        for v in [MessageType::Text, MessageType::Image, MessageType::File] {
            assert_eq!(MessageType::parse(v.as_str()), Some(v));
            assert_eq!(serde_json::to_value(v).unwrap(), v.as_str());
        }
        assert_eq!(PhoneVisibility::parse("contacts"), Some(PhoneVisibility::Contacts));
        assert_eq!(PhoneVisibility::parse("except"), None);
    }

    #[test]
    fn present_tells_absent_from_null() {
        let p: users::UpdateProfileRequest = serde_json::from_str(r#"{"bio":null}"#).unwrap();
        assert_eq!((p.bio, p.birthdate), (Some(None), None));
    }
}
