//! Input rules that more than one endpoint applies, each written once, with the one text its 422 gives.

use crate::users::is_display_safe;

/// The most characters of a name.
pub const NAME_MAX_CHARS: usize = 64;

/// What a 422 says of a required name that breaks the rule.
pub const NAME_RULE: &str = "must be 1-64 characters without control, bidirectional or invisible characters";
/// What a 422 says of an optional name that breaks the rule.
pub const OPTIONAL_NAME_RULE: &str =
    "must be at most 64 characters without control, bidirectional or invisible characters";

/// A name as the API stores it (first and last names, device, contact, theme and group names): trimmed,
/// 1–[`NAME_MAX_CHARS`] characters, safe to display ([`is_display_safe`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// A required name; the error is what its field's 422 says.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let text = text.trim();
        if text.is_empty() || text.chars().count() > NAME_MAX_CHARS || !is_display_safe(text) {
            return Err(NAME_RULE);
        }
        Ok(Self(text.to_owned()))
    }

    /// An optional name: absent or blank is none.
    pub fn parse_optional(text: Option<&str>) -> Result<Option<Self>, &'static str> {
        match text.map(str::trim).filter(|t| !t.is_empty()) {
            None => Ok(None),
            Some(text) => Self::parse(text).map(Some).map_err(|_| OPTIONAL_NAME_RULE),
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_bounded_and_display_safe() {
        assert_eq!(DisplayName::parse("  Ada ").unwrap().as_str(), "Ada");
        assert_eq!(DisplayName::parse(&"n".repeat(64)).unwrap().into_string().len(), 64);
        for bad in ["", "   ", &"n".repeat(65), "a\u{202E}b", "a\nb"] {
            assert_eq!(DisplayName::parse(bad), Err(NAME_RULE), "{bad:?}");
        }
        assert_eq!(DisplayName::parse_optional(None), Ok(None));
        assert_eq!(DisplayName::parse_optional(Some("  ")), Ok(None));
        assert_eq!(DisplayName::parse_optional(Some(" Phone ")).unwrap().unwrap().as_str(), "Phone");
        assert_eq!(DisplayName::parse_optional(Some(&"n".repeat(65))), Err(OPTIONAL_NAME_RULE));
    }
}
