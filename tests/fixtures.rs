//! Roster files for tests and the load tool: valid IINs and BINs, realistic Kazakh and Russian
//! names, phones, and a mix of categories.

use shared::ids::with_check_digit;

pub const HEADER: &str = "school_bin,school_name,student_iin,last_name,first_name,middle_name,grade,class_letter,receives_asp,per_capita_income_kzt,orphan,mother_name,mother_phone,father_name,father_phone,guardian_name,guardian_phone,card_number,lang";

/// A valid BIN for school number `n` (digit 5 is 4: a legal entity).
pub fn school_bin(n: u32) -> String {
    (0..10)
        .find_map(|salt| with_check_digit(&format!("0604{salt}{n:06}")))
        .expect("a salt gives a valid check digit")
}

/// A valid IIN for pupil `n`, unique for `n` below 16.8 million: the birth date (one of 1,680)
/// and the serial are a function of `n`; only the century digit (5 or 6, born in the 2000s)
/// varies to get a valid check digit, and one of any two century digits always does.
pub fn pupil_iin(n: u32) -> String {
    let combo = n % 1_680;
    let serial = (n / 1_680) % 10_000;
    let year = 15 + combo % 5;
    let month = 1 + (combo / 5) % 12;
    let day = 1 + combo / 60;
    [5, 6]
        .into_iter()
        .find_map(|century| {
            with_check_digit(&format!("{year:02}{month:02}{day:02}{century}{serial:04}"))
        })
        .expect("one of two century digits gives a valid check digit")
}

/// A Kazakhstan mobile number for family `n`.
pub fn phone(n: u32) -> String {
    format!("+7701{:07}", n % 10_000_000)
}

const FIRST: [&str; 8] = [
    "Айгерим",
    "Нурлан",
    "Дана",
    "Арман",
    "Аружан",
    "Тимур",
    "Мадина",
    "Ерлан",
];
const LAST: [&str; 8] = [
    "Сапарова",
    "Ахметов",
    "Иванова",
    "Касымов",
    "Нурланова",
    "Ким",
    "Жумабаева",
    "Смагулов",
];

/// One CSV line; every fourth pupil receives АСП, every fourth is low-income, one in eight is
/// an orphan, the rest are not eligible; one in twenty has no phone at all.
pub fn roster_line(school: u32, pupil: u32) -> String {
    let first = FIRST[(pupil % 8) as usize];
    let last = LAST[((pupil / 8) % 8) as usize];
    let (asp, income, orphan) = match pupil % 8 {
        0 | 1 => ("true", "", "false"),
        2 | 3 => ("false", "30000", "false"),
        4 => ("false", "", "true"),
        _ => ("false", "90000", "false"),
    };
    let no_phone = pupil % 20 == 19;
    let mother_phone = if no_phone {
        String::new()
    } else {
        phone(pupil)
    };
    let lang = if pupil.is_multiple_of(2) { "kk" } else { "ru" };
    format!(
        "{bin},Школа №{school},{iin},{last},{first},,{grade},{letter},{asp},{income},{orphan},{last} Мать,{mother_phone},,,,,C{card:08},{lang}",
        bin = school_bin(school),
        iin = pupil_iin(pupil),
        grade = 1 + pupil % 4,
        letter = ["А", "Б", "В"][(pupil % 3) as usize],
        card = pupil,
    )
}

/// A whole roster: `schools` schools with `per_school` pupils each, numbered from `first`.
pub fn roster_csv(schools: u32, per_school: u32) -> String {
    let mut out = String::with_capacity((schools * per_school) as usize * 160);
    out.push_str(HEADER);
    out.push('\n');
    for s in 0..schools {
        for p in 0..per_school {
            out.push_str(&roster_line(s, s * per_school + p));
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::{Bin, Iin, Phone};
    use std::collections::HashSet;

    #[test]
    fn generated_ids_are_valid_and_unique() {
        let mut seen = HashSet::new();
        for n in (0..20_000).chain(1_690_000..1_700_000) {
            let iin = pupil_iin(n);
            assert!(Iin::parse(&iin).is_ok(), "{iin}");
            assert!(seen.insert(iin), "duplicate IIN for pupil {n}");
        }
        for n in 0..7_000 {
            assert!(Bin::parse(&school_bin(n)).is_ok());
        }
        assert!(Phone::parse(&phone(123)).is_ok());
    }

    #[test]
    fn roster_has_header_and_one_line_per_pupil() {
        let csv = roster_csv(2, 10);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 21);
        assert_eq!(lines[0], HEADER);
        let columns = HEADER.split(',').count();
        assert!(lines[1..].iter().all(|l| l.split(',').count() == columns));
    }
}
