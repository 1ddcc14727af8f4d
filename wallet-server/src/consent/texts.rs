//! The SMS texts (DESIGN §7.2): the Russian ones word for word as the pilot's rules give them,
//! and a Kazakh version of each. The pupil's `lang` picks one; a number we know nothing about
//! gets both, Kazakh first.

use crate::config::Lang;

/// `{public_url}/wallet`, the page the consent answer links to.
pub fn wallet_link(public_url: &str) -> String {
    format!("{}/wallet", public_url.trim_end_matches('/'))
}

/// Text 1 (and, sent again, the repeat). `parent` and `child`: surname, name, patronymic
/// where known; without a parent's name the text addresses "parent".
pub fn request(lang: Lang, parent: Option<&str>, child: &str) -> String {
    match lang {
        Lang::Ru => format!(
            "Уважаемый (ая) {parent}! Вашему ребенку {child} полагается бесплатное питание в \
             общеобразовательной школе. Для получения бесплатного питания отправьте СМС с \
             текстом: 3#1. Если Вы не согласны введите 3#2 либо проигнорируйте данное сообщение. \
             Ответить необходимо в течение 3 календарных дней. При отправке текста 3#1 Вы \
             подтверждаете свое согласие на сбор и обработку общедоступных персональных данных и \
             персональных данных ограниченного доступа, необходимых для оказания государственной \
             услуги \"Предоставление бесплатного и льготного питания отдельным категориям \
             обучающихся и воспитанников в общеобразовательных школах\" в соответствии со статьей \
             8 Закона Республики Казахстан \"О персональных данных и их защите\". Настоящее \
             согласие действует в период оказания указанной государственной услуги. Отмечаем об \
             отсутствии передачи персональных данных третьим лицам и трансграничной передачи. В \
             случае возникновения вопросов можете обратиться в Call-центр по номеру 1414. Звонок \
             бесплатный.",
            parent = parent.unwrap_or("родитель"),
        ),
        Lang::Kk => format!(
            "Құрметті {parent}! Сіздің балаңыз {child} жалпы білім беретін мектепте тегін \
             тамақтануға құқылы. Тегін тамақтануды алу үшін 3#1 мәтінімен SMS жіберіңіз. \
             Келіспесеңіз, 3#2 деп жіберіңіз немесе осы хабарламаны елемеңіз. Жауапты 3 \
             күнтізбелік күн ішінде беру қажет. 3#1 мәтінін жібере отырып, Сіз \"Дербес деректер \
             және оларды қорғау туралы\" Қазақстан Республикасы Заңының 8-бабына сәйкес \"Жалпы \
             білім беретін мектептердегі білім алушылар мен тәрбиеленушілердің жекелеген \
             санаттарына тегін және жеңілдетілген тамақ беру\" мемлекеттік көрсетілетін қызметін \
             көрсету үшін қажетті жалпыға қолжетімді дербес деректерді және қолжетімділігі \
             шектеулі дербес деректерді жинауға және өңдеуге келісіміңізді растайсыз. Бұл келісім \
             аталған мемлекеттік қызмет көрсетілетін кезең ішінде қолданылады. Дербес деректердің \
             үшінші тұлғаларға берілмейтінін және трансшекаралық берілмейтінін хабарлаймыз. \
             Сұрақтар туындаса, 1414 нөмірі бойынша Call-орталыққа хабарласа аласыз. Қоңырау \
             тегін.",
            parent = parent.unwrap_or("ата-ана"),
        ),
    }
}

/// The sentence that follows text 2 or 3 (DESIGN §11): each child the reply applied to, so a
/// parent of several children knows whom the answer was for.
pub fn for_children(lang: Lang, children: &[String]) -> String {
    let names = children.join(", ");
    match (lang, children.len()) {
        (Lang::Ru, 1) => format!("Ребенок: {names}."),
        (Lang::Ru, _) => format!("Дети: {names}."),
        (Lang::Kk, 1) => format!("Бала: {names}."),
        (Lang::Kk, _) => format!("Балалар: {names}."),
    }
}

/// Text 2 or 3 (`base`) followed by the children it applied to; the text alone when none is
/// known.
pub fn naming(base: String, lang: Lang, children: &[String]) -> String {
    if children.is_empty() {
        return base;
    }
    format!("{base} {}", for_children(lang, children))
}

/// Text 2: the answer to a refusal.
pub fn refused(lang: Lang) -> String {
    match lang {
        Lang::Ru => "Вы отказались от получения услуги.".into(),
        Lang::Kk => "Сіз қызметті алудан бас тарттыңыз.".into(),
    }
}

/// Text 3: the answer to an agreement.
pub fn confirmed(lang: Lang, wallet_link: &str) -> String {
    match lang {
        Lang::Ru => format!(
            "Ваше согласие на получение бесплатного питания обработано положительно. Для \
             получения цифрового ваучера Вам необходимо зарегистрироваться в приложении \
             \"Социальный кошелек\" перейдя по ссылке {wallet_link}."
        ),
        Lang::Kk => format!(
            "Тегін тамақтануды алуға берген келісіміңіз оң қаралды. Цифрлық ваучерді алу үшін \
             {wallet_link} сілтемесі арқылы өтіп, \"Әлеуметтік әмиян\" қосымшасында тіркелуіңіз \
             қажет."
        ),
    }
}

/// The SMS of a new school year's voucher for a pupil whose consent stands (DESIGN §10), in
/// the manner of text 3: the child, the school year and the wallet link to activate it.
pub fn voucher_issued(lang: Lang, child: &str, school_year: &str, wallet_link: &str) -> String {
    match lang {
        Lang::Ru => format!(
            "Вашему ребенку {child} выдан цифровой ваучер на бесплатное питание на {school_year} \
             учебный год: Ваше согласие продолжает действовать. Для получения питания активируйте \
             ваучер в приложении \"Социальный кошелек\" по ссылке {wallet_link}. В случае \
             возникновения вопросов можете обратиться в Call-центр по номеру 1414. Звонок \
             бесплатный."
        ),
        Lang::Kk => format!(
            "Сіздің балаңыз {child} үшін {school_year} оқу жылына тегін тамақтануға цифрлық \
             ваучер берілді: Сіздің келісіміңіз күшінде. Тамақ алу үшін ваучерді {wallet_link} \
             сілтемесі арқылы \"Әлеуметтік әмиян\" қосымшасында белсендіріңіз. Сұрақтар \
             туындаса, 1414 нөмірі бойынша Call-орталыққа хабарласа аласыз. Қоңырау тегін."
        ),
    }
}

/// The answer to a `3#2` that withdrew consent (DESIGN §10), not a text of the pilot's rules:
/// each child it applied to by name, that the meals stop, and the way back — the school (a
/// `3#1` does not undo a withdrawal).
pub fn withdrawn(lang: Lang, children: &[String]) -> String {
    let children = children.join(", ");
    match lang {
        Lang::Ru => format!(
            "Вы отозвали согласие на бесплатное питание: {children}. Цифровой ваучер отозван, \
             бесплатное питание в школе прекращается. Чтобы снова получать питание, обратитесь \
             в школу. Вопросы: Call-центр 1414, звонок бесплатный."
        ),
        Lang::Kk => format!(
            "Сіз тегін тамақтануға берген келісіміңізді кері қайтарып алдыңыз: {children}. \
             Цифрлық ваучер кері қайтарылды, мектептегі тегін тамақтану тоқтатылады. Тамақты \
             қайта алу үшін мектепке хабарласыңыз. Сұрақтар бойынша: 1414 Call-орталығы, \
             қоңырау тегін."
        ),
    }
}

/// The answer to `3#1` or `3#2` from a number whose consent for these children was withdrawn
/// this school year: nothing changes, and the way back is the school.
pub fn already_withdrawn(lang: Lang, children: &[String]) -> String {
    let children = children.join(", ");
    match lang {
        Lang::Ru => format!(
            "Согласие на бесплатное питание уже отозвано: {children}. Чтобы снова получать \
             питание, обратитесь в школу. Вопросы: Call-центр 1414, звонок бесплатный."
        ),
        Lang::Kk => format!(
            "Тегін тамақтануға берілген келісім бұрын кері қайтарылған: {children}. Тамақты \
             қайта алу үшін мектепке хабарласыңыз. Сұрақтар бойынша: 1414 Call-орталығы, \
             қоңырау тегін."
        ),
    }
}

/// The SMS of a voucher revoked because the roster no longer puts the pupil in an eligible
/// category (DESIGN §10, kind `voucher_revoked`): the child, that the free meals stop and why,
/// and that the school answers questions.
pub fn voucher_revoked(lang: Lang, child: &str, school: &str) -> String {
    match lang {
        Lang::Ru => format!(
            "Бесплатное питание Вашего ребенка {child} в школе прекращено, цифровой ваучер \
             отменен: по новым данным НОБД ребенок больше не относится к категориям, которым \
             полагается бесплатное питание. Если это ошибка или у Вас есть вопросы, обратитесь в \
             школу: {school}."
        ),
        Lang::Kk => format!(
            "Сіздің балаңыз {child} үшін мектептегі тегін тамақтану тоқтатылды, цифрлық ваучер \
             жойылды: ҰБДҚ-ның жаңа деректері бойынша бала тегін тамақтану көзделген санаттарға \
             енді жатпайды. Егер бұл қате болса немесе сұрақтарыңыз болса, мектепке \
             хабарласыңыз: {school}."
        ),
    }
}

fn one_or_both(lang: Option<Lang>, text: fn(Lang) -> &'static str) -> String {
    match lang {
        Some(l) => text(l).to_owned(),
        None => format!("{}\n{}", text(Lang::Kk), text(Lang::Ru)),
    }
}

/// The answer to a text that is not `3#1` or `3#2`.
pub fn help(lang: Option<Lang>) -> String {
    one_or_both(lang, |l| match l {
        Lang::Ru => {
            "Ответ не распознан. Чтобы согласиться на бесплатное питание, отправьте 3#1, \
                     чтобы отказаться — 3#2. Вопросы: Call-центр 1414, звонок бесплатный."
        }
        Lang::Kk => {
            "Жауап танылмады. Тегін тамақтануға келісу үшін 3#1, бас тарту үшін 3#2 \
                     жіберіңіз. Сұрақтар бойынша: 1414 Call-орталығы, қоңырау тегін."
        }
    })
}

/// The answer to `3#1` / `3#2` from a number with no request awaiting an answer.
pub fn nothing_pending(lang: Option<Lang>) -> String {
    one_or_both(lang, |l| match l {
        Lang::Ru => {
            "На этот номер нет запроса, ожидающего ответа. Вопросы: Call-центр 1414, \
                     звонок бесплатный."
        }
        Lang::Kk => {
            "Бұл нөмірге жауап күтіп тұрған сұрау жоқ. Сұрақтар бойынша: 1414 \
                     Call-орталығы, қоңырау тегін."
        }
    })
}

/// A number as the answer to another listed number shows it: `+7 701 *** ** 67`.
pub fn masked_spaced(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().collect();
    if digits.len() != 12 {
        return "***".to_owned();
    }
    let code: String = digits[2..5].iter().collect();
    let tail: String = digits[10..].iter().collect();
    format!("+7 {code} *** ** {tail}")
}

/// The answer to `3#1` / `3#2` from a number listed for a pupil whose request went to another
/// listed number (DESIGN §11): which number was asked (masked).
pub fn asked_elsewhere(lang: Lang, asked: &[String]) -> String {
    let numbers = asked
        .iter()
        .map(|p| masked_spaced(p))
        .collect::<Vec<_>>()
        .join(", ");
    match lang {
        Lang::Ru => format!(
            "Запрос о бесплатном питании отправлен на номер {numbers}. Ответьте 3#1 или 3#2 с \
             этого номера. Вопросы: Call-центр 1414, звонок бесплатный."
        ),
        Lang::Kk => format!(
            "Тегін тамақ туралы сұрау {numbers} нөміріне жіберілді. 3#1 немесе 3#2 жауабын сол \
             нөмірден жіберіңіз. Сұрақтар бойынша: 1414 Call-орталығы, қоңырау тегін."
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// §7.2 text 1 as the design gives it, with the placeholders filled in.
    const RU_REQUEST: &str = "Уважаемый (ая) Сапарова Динара Ерлановна! Вашему ребенку Сапаров Алихан Русланович полагается бесплатное питание в общеобразовательной школе. Для получения бесплатного питания отправьте СМС с текстом: 3#1. Если Вы не согласны введите 3#2 либо проигнорируйте данное сообщение. Ответить необходимо в течение 3 календарных дней. При отправке текста 3#1 Вы подтверждаете свое согласие на сбор и обработку общедоступных персональных данных и персональных данных ограниченного доступа, необходимых для оказания государственной услуги \"Предоставление бесплатного и льготного питания отдельным категориям обучающихся и воспитанников в общеобразовательных школах\" в соответствии со статьей 8 Закона Республики Казахстан \"О персональных данных и их защите\". Настоящее согласие действует в период оказания указанной государственной услуги. Отмечаем об отсутствии передачи персональных данных третьим лицам и трансграничной передачи. В случае возникновения вопросов можете обратиться в Call-центр по номеру 1414. Звонок бесплатный.";

    #[test]
    fn another_number_is_told_which_was_asked() {
        assert_eq!(masked_spaced("+77011234567"), "+7 701 *** ** 67");
        let ru = asked_elsewhere(Lang::Ru, &["+77011234567".to_owned()]);
        assert!(ru.contains("+7 701 *** ** 67"), "{ru}");
        assert!(!ru.contains("12345"), "{ru}");
        let kk = asked_elsewhere(Lang::Kk, &["+77011234567".to_owned()]);
        assert!(kk.contains("+7 701 *** ** 67 нөміріне"), "{kk}");
    }

    #[test]
    fn russian_texts_are_the_pilots_words() {
        assert_eq!(
            request(
                Lang::Ru,
                Some("Сапарова Динара Ерлановна"),
                "Сапаров Алихан Русланович"
            ),
            RU_REQUEST
        );
        assert_eq!(refused(Lang::Ru), "Вы отказались от получения услуги.");
        assert_eq!(
            confirmed(Lang::Ru, "https://tamaq.kz/wallet"),
            "Ваше согласие на получение бесплатного питания обработано положительно. Для получения цифрового ваучера Вам необходимо зарегистрироваться в приложении \"Социальный кошелек\" перейдя по ссылке https://tamaq.kz/wallet."
        );
    }

    #[test]
    fn kazakh_texts_carry_the_same_facts() {
        let kk = request(Lang::Kk, None, "Сапаров Алихан");
        assert!(kk.starts_with("Құрметті ата-ана! Сіздің балаңыз Сапаров Алихан "));
        for needle in ["3#1", "3#2", "3 күнтізбелік күн", "8-бабына", "1414"] {
            assert!(kk.contains(needle), "{needle}");
        }
        assert!(confirmed(Lang::Kk, "http://x/wallet").contains("http://x/wallet сілтемесі"));
        assert!(
            !kk.contains("  "),
            "no doubled spaces from line continuations"
        );
        assert!(!RU_REQUEST.contains("  "));
    }

    #[test]
    fn the_new_years_voucher_names_child_year_and_link() {
        for lang in [Lang::Ru, Lang::Kk] {
            let text = voucher_issued(lang, "Сапаров Алихан", "2027-2028", "https://t.kz/wallet");
            for needle in ["Сапаров Алихан", "2027-2028", "https://t.kz/wallet", "1414"]
            {
                assert!(text.contains(needle), "{lang:?}: {needle}");
            }
            assert!(!text.contains("  "), "no doubled spaces");
        }
        assert!(voucher_issued(Lang::Ru, "А", "2027-2028", "l").starts_with("Вашему ребенку А "));
    }

    #[test]
    fn withdrawal_names_each_child_and_the_way_back() {
        let children = [
            "Сапаров Алихан Русланович".to_owned(),
            "Сапарова Айгерим".to_owned(),
        ];
        for lang in [Lang::Ru, Lang::Kk] {
            for text in [
                withdrawn(lang, &children),
                already_withdrawn(lang, &children),
            ] {
                for needle in ["Сапаров Алихан Русланович, Сапарова Айгерим", "1414"]
                {
                    assert!(text.contains(needle), "{lang:?}: {needle} in {text}");
                }
                assert!(!text.contains("  "), "no doubled spaces");
                assert!(!text.contains("3#1"), "3#1 is not the way back");
            }
        }
        assert!(withdrawn(Lang::Ru, &children).contains("обратитесь в школу"));
        assert!(withdrawn(Lang::Kk, &children).contains("мектепке хабарласыңыз"));
        assert_ne!(
            withdrawn(Lang::Ru, &children),
            already_withdrawn(Lang::Ru, &children)
        );
    }

    #[test]
    fn a_revoked_voucher_names_child_reason_and_school() {
        for (lang, reason) in [
            (Lang::Ru, "больше не относится"),
            (Lang::Kk, "енді жатпайды"),
        ] {
            let text = voucher_revoked(lang, "Сапаров Алихан Русланович", "Школа №1");
            for needle in ["Сапаров Алихан Русланович", "Школа №1", reason]
            {
                assert!(text.contains(needle), "{lang:?}: {needle}");
            }
            assert!(!text.contains("  "), "no doubled spaces");
            assert!(!text.contains("3#"), "nothing to reply");
        }
    }

    #[test]
    fn answers_name_each_child_after_the_pilots_text() {
        let two = ["Сапаров Алихан".to_owned(), "Сапарова Айгерим".to_owned()];
        let one = &two[..1];
        let ru = naming(confirmed(Lang::Ru, "l"), Lang::Ru, &two);
        assert!(
            ru.starts_with(&confirmed(Lang::Ru, "l")),
            "the pilot's text comes first"
        );
        assert!(
            ru.ends_with(" Дети: Сапаров Алихан, Сапарова Айгерим."),
            "{ru}"
        );
        let kk = naming(refused(Lang::Kk), Lang::Kk, one);
        assert_eq!(kk, format!("{} Бала: Сапаров Алихан.", refused(Lang::Kk)));
        assert_eq!(naming(refused(Lang::Ru), Lang::Ru, &[]), refused(Lang::Ru));
        assert!(naming(refused(Lang::Kk), Lang::Kk, &two).contains("Балалар: "));
    }

    #[test]
    fn unknown_numbers_get_both_languages() {
        let both = help(None);
        assert!(both.starts_with(&help(Some(Lang::Kk))));
        assert!(both.ends_with(&help(Some(Lang::Ru))));
        assert_eq!(wallet_link("https://t.kz/"), "https://t.kz/wallet");
    }
}
