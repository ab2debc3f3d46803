//! Users: profile rules (usernames, phones, search text) and the fixed avatar catalogues. Rows and queries
//! are [`crate::db::users`]'.

pub use crate::db::users::{UserRow, find};

/// Avatar frames of API.md §10.1: id, original name, colour hint.
pub const AVATAR_FRAMES: [(&str, &str, &str); 4] = [
    ("none", "Без рамки", "#000000"),
    ("fire", "Огненная", "#FF4500"),
    ("rainbow", "Радужная", "#FF0000"),
    ("purple", "Фиолетовая", "#800080"),
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
    chars.iter().enumerate().all(|(i, &c)| match c {
        // The zero-width joiner builds emoji sequences (family, profession): allowed only between emoji.
        '\u{200D}' => i > 0 && emoji(chars.get(i - 1)) && emoji(chars.get(i + 1)),
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
        | '\u{FFF9}'..='\u{FFFB}' => false,
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
pub fn normalize_phone(phone: &str) -> Option<String> {
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
    }
}
