//! Phone numbers compared as E.164 after normalising with a default region.

use phonenumber::country::Id as Region;
use phonenumber::Mode;

/// Parses a region code such as `US` or `pt` (ISO 3166-1 alpha-2).
pub fn parse_region(code: &str) -> Option<Region> {
    code.trim().to_ascii_uppercase().parse().ok()
}

/// `raw` in E.164 (`+14155550100`), reading numbers without a country code as numbers of
/// `default_region`. Extensions are dropped. `None` when it is not a phone number at all.
pub fn to_e164(raw: &str, default_region: Region) -> Option<String> {
    let raw = raw.trim();
    let digits = raw.chars().filter(char::is_ascii_digit).count();
    if !(4..=20).contains(&digits) {
        return None;
    }
    // "00" international prefix and bare international numbers without "+".
    let candidate = if let Some(rest) = raw.strip_prefix("00") {
        format!("+{rest}")
    } else {
        raw.to_string()
    };
    let number = phonenumber::parse(Some(default_region), &candidate).ok()?;
    Some(number.format().mode(Mode::E164).to_string())
}

/// The national significant number of an E.164 number (`+14155550134` → `4155550134`): what systems that
/// store phones as typed are searched by. `None` when it is not E.164 or has fewer than four digits.
pub fn national_number(e164: &str) -> Option<String> {
    let digits = e164.strip_prefix('+')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let number = phonenumber::parse(None, e164).ok()?;
    let national = number.national().value().to_string();
    (national.len() >= 4 && digits.ends_with(&national)).then_some(national)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us() -> Region {
        parse_region("US").unwrap()
    }

    #[test]
    fn national_and_international_forms_meet_in_e164() {
        for raw in [
            "(415) 555-0134",
            "415.555.0134",
            "+1 415 555 0134",
            "001 415 555 0134",
            "+1-415-555-0134 ext. 12",
        ] {
            assert_eq!(to_e164(raw, us()).as_deref(), Some("+14155550134"), "{raw}");
        }
    }

    #[test]
    fn the_default_region_applies_only_without_a_country_code() {
        let gb = parse_region("gb").unwrap();
        assert_eq!(to_e164("020 7946 0958", gb).as_deref(), Some("+442079460958"));
        assert_eq!(to_e164("+351 21 234 5678", gb).as_deref(), Some("+351212345678"));
    }

    #[test]
    fn things_that_are_not_numbers_are_refused() {
        assert_eq!(to_e164("call me", us()), None);
        assert_eq!(to_e164("12", us()), None);
        assert!(parse_region("XX").is_none());
    }

    #[test]
    fn the_national_number_drops_the_country_code() {
        assert_eq!(national_number("+14155550134").as_deref(), Some("4155550134"));
        assert_eq!(national_number("+442079460000").as_deref(), Some("2079460000"));
        assert_eq!(national_number("4155550134"), None);
        assert_eq!(national_number("+1"), None);
    }
}
