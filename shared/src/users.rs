//! Users: profile rules (usernames, phones, search text) and the fixed avatar catalogues. Rows and queries
//! are [`crate::db::users`]'.

pub use crate::db::users::UserRow;

use crate::error::ApiError;
use crate::ratelimit::Scope;
use crate::state::AppState;
use wire::AvatarFrameId;

/// Counts one look-up of other users by `viewer` under `RATE_LIMIT_DIRECTORY`: the user list, profiles,
/// device lists, legacy keys and contact names share one budget, since each answers whether an id exists.
pub async fn count_lookup(state: &AppState, viewer: i64) -> Result<(), ApiError> {
    state.limiter.hit(&state.db, Scope::Directory, &viewer.to_string()).await
}

/// Avatar frames of API.md §10.1: id, original name, colour hint.
pub const AVATAR_FRAMES: [(AvatarFrameId, &str, &str); 4] = [
    (AvatarFrameId::None, "Без рамки", "#000000"),
    (AvatarFrameId::Fire, "Огненная", "#FF4500"),
    (AvatarFrameId::Rainbow, "Радужная", "#FF0000"),
    (AvatarFrameId::Purple, "Фиолетовая", "#800080"),
];

/// Preset avatar ids of API.md §10.2.
pub const PRESET_AVATAR_IDS: [&str; 12] = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"];

/// The lower-cased text `GET /users/search` matches: username, first name, last name and "first last".
pub fn search_text(username: Option<&str>, first_name: Option<&str>, last_name: Option<&str>) -> String {
    let (first, last) = (first_name.unwrap_or_default(), last_name.unwrap_or_default());
    format!("{}\n{first}\n{last}\n{first} {last}", username.unwrap_or_default()).to_lowercase()
}

/// Whether `text` can be shown as a name: no control characters, no bidirectional overrides, embeddings,
/// isolates or marks (which let `gpj.exe` read as `exe.jpg`), and no invisible characters (zero-width
/// spaces, joiners outside emoji, word joiners, the BOM, soft hyphens, invisible operators).
pub fn is_display_safe(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    let emoji = |c: Option<&char>| {
        c.is_some_and(|&c| c as u32 >= 0x1F000 || ('\u{2600}'..='\u{27BF}').contains(&c) || c == '\u{FE0F}')
    };
    let tag = |c: &char| ('\u{E0020}'..='\u{E007F}').contains(c);
    chars.iter().enumerate().all(|(i, &c)| match c {
        // The zero-width joiner builds emoji sequences (family, profession): allowed only between emoji.
        '\u{200D}' => i > 0 && emoji(chars.get(i - 1)) && emoji(chars.get(i + 1)),
        // Tags spell subdivision flags (🏴 + "gbeng" + cancel tag) and nothing else.
        c if tag(&c) => chars[..i].iter().rev().find(|p| !tag(p)) == Some(&'\u{1F3F4}'),
        c if c.is_control() => false,
        '\u{00AD}'
        | '\u{061C}'
        | '\u{180E}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}'
        | '\u{206A}'..='\u{206F}'
        | '\u{FEFF}'
        | '\u{FFF9}'..='\u{FFFB}'
        // Line and paragraph separators, the remaining format characters (prepended number signs,
        // hieroglyph and shorthand format controls, musical beams), the combining grapheme joiner,
        // Hangul fillers that render as blanks, text variation selectors and the language tag.
        | '\u{2028}'
        | '\u{2029}'
        | '\u{0600}'..='\u{0605}'
        | '\u{06DD}'
        | '\u{070F}'
        | '\u{0890}'..='\u{0891}'
        | '\u{08E2}'
        | '\u{110BD}'
        | '\u{110CD}'
        | '\u{13430}'..='\u{1343F}'
        | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}'
        | '\u{034F}'
        | '\u{115F}'
        | '\u{1160}'
        | '\u{3164}'
        | '\u{FFA0}'
        | '\u{FE00}'..='\u{FE0E}'
        | '\u{E0001}'
        | '\u{E0000}'..='\u{E001F}' => false,
        _ => true,
    })
}

/// Username rules of API.md §4.1: 5–32 of `[A-Za-z0-9_]`, starting with a letter.
pub fn valid_username(name: &str) -> bool {
    let mut chars = name.chars();
    (5..=32).contains(&name.len())
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Keeps only the digits of a phone number; `None` unless 7–15 digits remain.
/// Digits of another script (`７`, `٣`) make it `None` rather than silently naming another number.
pub fn normalize_phone(phone: &str) -> Option<String> {
    if phone.chars().any(|c| c.is_numeric() && !c.is_ascii_digit()) {
        return None;
    }
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    (7..=15).contains(&digits.len()).then_some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_bidi_controls_or_invisible_characters_are_not_display_safe() {
        for bad in [
            "evil\u{202E}gpj.exe",
            "a\u{200B}b",
            "\u{2066}x\u{2069}",
            "x\u{FEFF}",
            "a\u{200D}b",
            "tab\there",
            "\u{200F}",
        ] {
            assert!(!is_display_safe(bad), "{bad:?}");
        }
        for good in ["Ada Lovelace", "Анна", "李雷", "Zoë", "👨\u{200D}👩\u{200D}👧", "❤\u{FE0F}", "O'Brien-Smith"]
        {
            assert!(is_display_safe(good), "{good:?}");
        }
    }

    #[test]
    fn usernames_follow_the_rules() {
        assert!(valid_username("alice"));
        assert!(valid_username("Bob_2024"));
        assert!(!valid_username("abcd"), "too short");
        assert!(!valid_username(&"a".repeat(33)), "too long");
        assert!(!valid_username("12345"), "must start with a letter");
        assert!(!valid_username("_alice"));
        assert!(!valid_username("ali ce"));
        assert!(!valid_username("алиса"));
    }

    #[test]
    fn phones_keep_their_digits() {
        assert_eq!(normalize_phone("+7 (999) 123-45-67").as_deref(), Some("79991234567"));
        assert_eq!(normalize_phone("123456"), None);
        assert_eq!(normalize_phone("1234567890123456"), None);
        assert_eq!(normalize_phone(""), None);
        assert_eq!(normalize_phone("+7 999 123 45 6７"), None, "a fullwidth digit");
    }

    use proptest::prelude::*;

    /// Characters a name must never hold (outside the emoji contexts `is_display_safe` allows).
    fn unsafe_char() -> impl Strategy<Value = char> {
        prop_oneof![
            (0u32..0x20).prop_map(|c| char::from_u32(c).unwrap()),
            (0x7Fu32..0xA0).prop_map(|c| char::from_u32(c).unwrap()),
            proptest::sample::select(vec![
                '\u{00AD}',
                '\u{034F}',
                '\u{061C}',
                '\u{0600}',
                '\u{06DD}',
                '\u{070F}',
                '\u{08E2}',
                '\u{115F}',
                '\u{180E}',
                '\u{200B}',
                '\u{200C}',
                '\u{200D}',
                '\u{200E}',
                '\u{200F}',
                '\u{2028}',
                '\u{2029}',
                '\u{202A}',
                '\u{202B}',
                '\u{202C}',
                '\u{202D}',
                '\u{202E}',
                '\u{2060}',
                '\u{2063}',
                '\u{2066}',
                '\u{2069}',
                '\u{206F}',
                '\u{3164}',
                '\u{FE00}',
                '\u{FEFF}',
                '\u{FFA0}',
                '\u{FFF9}',
                '\u{110BD}',
                '\u{13430}',
                '\u{1BCA0}',
                '\u{1D173}',
                '\u{E0001}',
                '\u{E0041}',
                '\u{E007F}',
            ]),
        ]
    }

    /// Text of letters, digits, punctuation and spaces of several scripts.
    fn plain_text() -> impl Strategy<Value = String> {
        "[A-Za-z0-9 .,'()\\-_äöüßéñçÅøЖжДдЯяعربي中文字日本語한국어אבג]{0,20}"
    }

    proptest! {
        #[test]
        fn a_name_holding_an_unsafe_character_is_refused(
            before in plain_text(), bad in unsafe_char(), after in plain_text(),
        ) {
            let text = format!("{before}{bad}{after}");
            prop_assert!(!is_display_safe(&text), "{:?}", text);
        }

        #[test]
        fn plain_names_and_emoji_sequences_are_accepted(text in plain_text(), emoji in proptest::sample::select(vec![
            "", "👨\u{200D}👩\u{200D}👧", "❤\u{FE0F}", "🏴\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}", "👍🏽",
        ])) {
            let named = format!("{text}{emoji}");
            prop_assert!(is_display_safe(&named), "{:?}", named);
        }

        #[test]
        fn usernames_are_exactly_the_documented_pattern(name in "\\PC{0,40}|[A-Za-z_0-9]{0,40}") {
            let oracle = name.len() >= 5 && name.len() <= 32
                && name.starts_with(|c: char| c.is_ascii_alphabetic())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            prop_assert_eq!(valid_username(&name), oracle, "{:?}", name);
        }

        #[test]
        fn phones_normalise_to_their_digits_once(
            digits in "[0-9]{1,20}", noise in proptest::collection::vec("[ +()\\-.]", 0..6),
        ) {
            let mut typed = String::new();
            for (i, d) in digits.chars().enumerate() {
                typed.push(d);
                if let Some(n) = noise.get(i) {
                    typed.push_str(n);
                }
            }
            let normal = normalize_phone(&typed);
            prop_assert_eq!(normal.is_some(), (7..=15).contains(&digits.len()));
            if let Some(n) = normal {
                prop_assert_eq!(&n, &digits);
                prop_assert_eq!(normalize_phone(&n), Some(n.clone()), "a fixed point");
            }
        }

        #[test]
        fn phones_with_digits_of_another_script_are_refused(
            digits in "[0-9]{7,12}", other in "[０-９٠-٩०-९]",
        ) {
            prop_assert_eq!(normalize_phone(&format!("{digits}{other}")), None);
        }
    }
}
