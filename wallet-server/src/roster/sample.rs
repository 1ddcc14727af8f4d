//! Made-up rosters that pass validation: for benchmarks, demos and tests. Deterministic: the
//! same arguments give the same file. IINs and BINs are real-looking numbers with valid check
//! digits; phones are in the +7 701 range.

use super::fields::Column;
use shared::ids::with_check_digit;

const SURNAMES: [&str; 8] = [
    "Ахметов",
    "Сапаров",
    "Жумабаев",
    "Искаков",
    "Нурланов",
    "Серіков",
    "Омаров",
    "Касымов",
];
const NAMES: [&str; 8] = [
    "Алихан",
    "Айгерим",
    "Нурсултан",
    "Дана",
    "Ерасыл",
    "Аружан",
    "Тимур",
    "Әсел",
];
const PATRONYMICS: [&str; 4] = ["Русланович", "Ерланович", "Маратович", "Бауыржанович"];
const PARENTS: [&str; 4] = ["Динара", "Гульнар", "Асель", "Жанар"];

/// The `k`-th school's BIN (valid check digit).
pub fn school_bin(k: usize) -> String {
    (0..)
        .find_map(|j| with_check_digit(&format!("9{:05}4{:04}", k % 100_000, j)))
        .expect("some suffix has a check digit")
}

/// `n` distinct valid IINs of children born 2012–2019, from `start` on.
pub fn iins(start: usize, n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    let mut k = start;
    while out.len() < n {
        let (serial, rest) = (k % 10_000, k / 10_000);
        let (day, rest) = (rest % 28 + 1, rest / 28);
        let (month, rest) = (rest % 12 + 1, rest / 12);
        let year = 12 + rest % 8;
        let sex = 5 + (k % 2);
        if let Some(iin) = with_check_digit(&format!("{year:02}{month:02}{day:02}{sex}{serial:04}"))
        {
            out.push(iin);
        }
        k += 1;
    }
    out
}

/// A CSV roster with a header: `pupils` pupils spread over `schools` schools. About a third
/// receive АСП, some are low-income or orphans, the rest not eligible; one in twenty has no
/// phone; mothers' phones first, then fathers', then guardians'.
pub fn csv(pupils: usize, schools: usize) -> String {
    let mut out = String::with_capacity(pupils * 260);
    out.push_str(&Column::ALL.map(|c| c.name()).join(","));
    out.push('\n');
    let bins: Vec<String> = (0..schools.max(1)).map(school_bin).collect();
    for (i, iin) in iins(0, pupils).into_iter().enumerate() {
        let school = i % bins.len();
        let surname = SURNAMES[i % SURNAMES.len()];
        let phone = |offset: usize| format!("+7701{:07}", (i * 3 + offset) % 10_000_000);
        let (mother, father, guardian) = match i % 20 {
            0 => ("", "", ""),
            1 | 2 => ("", "8 701", ""),
            3 => ("", "", "guardian"),
            _ => ("mother", "", ""),
        };
        let fields: [String; 19] = [
            bins[school].clone(),
            format!("\"Школа №{}, г. Астана\"", school + 1),
            iin,
            surname.to_owned(),
            NAMES[(i / 8) % NAMES.len()].to_owned(),
            PATRONYMICS[i % PATRONYMICS.len()].to_owned(),
            (1 + i % 4).to_string(),
            ["А", "Б", "В"][i % 3].to_owned(),
            (if i % 3 == 0 { "1" } else { "0" }).to_owned(),
            (if i % 5 == 1 { "40000" } else { "90000" }).to_owned(),
            (if i % 7 == 2 { "да" } else { "нет" }).to_owned(),
            format!("{surname}а {} Ерлановна", PARENTS[i % PARENTS.len()]),
            if mother.is_empty() {
                String::new()
            } else {
                phone(0)
            },
            format!("{surname} Руслан Маратович"),
            if father.is_empty() {
                String::new()
            } else {
                format!("8 701 {:07}", (i * 3 + 1) % 10_000_000)
            },
            String::new(),
            if guardian.is_empty() {
                String::new()
            } else {
                phone(2)
            },
            format!("{:09}", i),
            (if i % 2 == 0 { "kk" } else { "ru" }).to_owned(),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::ids::{Bin, Iin};

    #[test]
    fn numbers_are_valid_and_distinct() {
        let list = iins(0, 2_000);
        let set: std::collections::HashSet<_> = list.iter().collect();
        assert_eq!(set.len(), 2_000);
        assert!(list.iter().all(|i| Iin::parse(i).is_ok()));
        assert!((0..50).all(|k| Bin::parse(&school_bin(k)).is_ok()));
    }
}
