//! Anomalies: served events the server refused, gaps in a terminal's log, meals served by card
//! or look-up per terminal and day, and repeats kept apart from real second attempts. The same
//! page serves the school and its authority.

use super::layout::Page;
use super::meals::filter_form;
use super::{PageError, SchoolPage};
use crate::config::Lang;
use crate::review::export::ROW_LIMIT;
use crate::review::texts::{class_name, esc, local_clock, pupil_name, tr};
use crate::state::AppState;
use axum::extract::State;

/// Rows shown per table on the page (the JSON answer has up to `ROW_LIMIT`).
const PAGE_ROWS: usize = 500;
/// A terminal-day with at least this share of card or look-up meals is highlighted.
const CARD_SHARE_ALARM: f64 = 0.5;

/// What each refusal code means, for staff.
pub fn refusal_label(lang: Lang, code: &str) -> String {
    let (kk, ru) = match code {
        "no_proof" => ("QR-дәлелі жоқ", "нет подтверждения QR"),
        "bad_proof" => (
            "QR-дәлелі жарамсыз (қолтаңба)",
            "недействительное подтверждение QR (подпись)",
        ),
        "proof_other_voucher" => ("QR басқа ваучерге тиесілі", "QR другого ваучера"),
        "proof_other_school" => ("QR басқа мектепке берілген", "QR выдан для другой школы"),
        "outside_token_validity" => ("QR мерзімінен тыс", "вне срока действия QR"),
        "unknown_voucher" => ("белгісіз ваучер", "неизвестный ваучер"),
        "other_school_voucher" => ("басқа мектептің ваучері", "ваучер другой школы"),
        "voucher_inactive" => ("ваучер белсенді емес еді", "ваучер не был активен"),
        "outside_school_year" => ("оқу жылынан тыс", "вне учебного года"),
        "not_a_school_day" => ("оқу күні емес", "не учебный день"),
        "outside_meal_window" => ("тамақтану уақытынан тыс", "вне времени питания"),
        "in_future" => ("болашақ уақыт", "время в будущем"),
        "day_mismatch" => ("күн уақытқа сәйкес емес", "день не совпадает со временем"),
        "clock_offset" => ("терминал сағаты қате", "часы терминала неверны"),
        other => return other.to_owned(),
    };
    tr(lang, kk, ru).to_owned()
}

pub async fn page(State(state): State<AppState>, page: SchoolPage) -> Result<Page, PageError> {
    let lang = page.req.lang;
    let t = |kk, ru| tr(lang, kk, ru);
    let f = page
        .req
        .query
        .filter(page.access.school.code, page.today(&state))
        .map_err(|e| page.req.fail(e))?;
    let a = state
        .store
        .anomalies(f.school_code, &f.from, &f.to, ROW_LIMIT)
        .await
        .map_err(|e| page.req.fail(e))?;
    let none = format!("<p class=\"ok\">{}</p>", t("Жоқ.", "Нет."));

    let mut body = filter_form(lang, &f, false, None);
    body.push_str(&format!(
        "<h2>{}</h2><p>{}</p>",
        t("Сервер қабылдамаған тамақ", "Питание, не принятое сервером"),
        t(
            "Терминал «берілді» деп жіберген, бірақ сервер тексеруден өткізбеген оқиғалар. Олар есептерге, ата-ана тарихына және ҰБДҚ-ға кірмейді.",
            "События, которые терминал отправил как выданное питание, но сервер их не подтвердил. Они не входят в отчёты, историю родителя и НОБД."
        )
    ));
    if a.refused_by_reason.is_empty() {
        body.push_str(&none);
    } else {
        body.push_str(&format!(
            "<table><tr><th>{}</th><th>{}</th></tr>",
            t("Себебі", "Причина"),
            t("Саны", "Количество")
        ));
        for r in &a.refused_by_reason {
            body.push_str(&format!(
                "<tr class=\"warn\"><td>{}</td><td class=\"n\">{}</td></tr>",
                esc(&refusal_label(lang, &r.refusal)),
                r.events
            ));
        }
        body.push_str("</table>");
        body.push_str(&format!(
            "<table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            t("Күні", "Дата"),
            t("Уақыты", "Время"),
            t("Себебі", "Причина"),
            t("Оқушы", "Ученик"),
            t("Сынып", "Класс"),
            t("Терминал (№)", "Терминал (№)")
        ));
        for r in a.refused.iter().take(PAGE_ROWS) {
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ({})</td></tr>",
                esc(&r.service_day),
                local_clock(r.scanned_at),
                esc(&refusal_label(lang, &r.refusal)),
                esc(&pupil_name(r.last_name.as_deref(), r.first_name.as_deref())),
                esc(&class_name(r.grade, r.class_letter.as_deref())),
                esc(r.terminal_label.as_deref().unwrap_or("—")),
                r.seq
            ));
        }
        body.push_str("</table>");
    }

    body.push_str(&format!(
        "<h2>{}</h2><p>{}</p>",
        t("Терминал журналындағы үзілістер", "Пропуски в журнале терминала"),
        t(
            "Терминал осы нөмірлі жазбаларды жібермеген, ал кейінгілері келген: жазбалар жоғалған немесе жойылған болуы мүмкін.",
            "Терминал не передал записи с этими номерами, а более поздние пришли: записи могли быть утеряны или удалены."
        )
    ));
    if a.seq_gaps.is_empty() {
        body.push_str(&none);
    } else {
        body.push_str(&format!(
            "<table><tr><th>{}</th><th>{}</th><th>{}</th></tr>",
            t("Терминал", "Терминал"),
            t("Жоқ нөмірлер", "Нет номеров"),
            t("Саны", "Количество")
        ));
        for g in a.seq_gaps.iter().take(PAGE_ROWS) {
            body.push_str(&format!(
                "<tr class=\"warn\"><td>{}</td><td>{}–{}</td><td class=\"n\">{}</td></tr>",
                esc(&g.terminal_label),
                g.from_seq,
                g.to_seq,
                g.to_seq - g.from_seq + 1
            ));
        }
        body.push_str("</table>");
    }

    body.push_str(&format!(
        "<h2>{}</h2><p>{}</p>",
        t("Карта немесе іздеу арқылы берілген тамақ", "Питание по карте или поиску"),
        t(
            "Картамен немесе қызметкер іздеуімен берілген тамақты QR растамайды. Көбін осылай беретін терминалды тексеріңіз.",
            "Питание по карте или поиску сотрудника не подтверждено QR. Терминал, выдающий так большую часть, стоит проверить."
        )
    ));
    if a.card_share.is_empty() {
        body.push_str(&none);
    } else {
        body.push_str(&format!(
            "<table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            t("Күні", "Дата"),
            t("Терминал", "Терминал"),
            t("Барлығы", "Всего"),
            t("Карта/іздеу", "Карта/поиск"),
            t("Үлесі", "Доля")
        ));
        for c in a.card_share.iter().take(PAGE_ROWS) {
            let share = c.card as f64 / c.served.max(1) as f64;
            body.push_str(&format!(
                "<tr{}><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.0}%</td></tr>",
                if share >= CARD_SHARE_ALARM { " class=\"warn\"" } else { "" },
                esc(&c.service_day),
                esc(&c.terminal_label),
                c.served,
                c.card,
                share * 100.0
            ));
        }
        body.push_str("</table>");
    }

    body.push_str(&format!(
        "<h2>{}</h2><table><tr><td>{}</td><td class=\"n\">{}</td></tr><tr><td>{}</td><td class=\"n\">{}</td></tr></table>",
        t("Қайта сканерлеу", "Повторные сканирования"),
        t(
            "Сол QR сол терминалда 2 минут ішінде қайта оқылды (камера не сканер): күдікті емес",
            "Тот же QR повторно считан тем же терминалом в течение 2 минут (камера или сканер): не подозрительно"
        ),
        a.second_scans.repeats,
        t(
            "Бүгін тамақ алған ваучермен шын қайта әрекет",
            "Настоящие повторные попытки по ваучеру, уже получившему питание"
        ),
        a.second_scans.second_attempts
    ));

    body.push_str(&format!(
        "<h2>{}</h2><p>{}</p><table><tr{}><td>{}</td><td class=\"n\">{}</td></tr></table>",
        t("Минуттық шектен тыс", "Сверх лимита в минуту"),
        t(
            "Терминал минутына белгіленген саннан көп бас тартуды жеке жазбайды, тек санайды: сканер тұрып қалған немесе бағдарлама жалған деректер жіберген болуы мүмкін.",
            "Сверх лимита в минуту терминал не записывает отказы по одному, а только считает их: возможно, завис сканер или программа подаёт мусор."
        ),
        if a.capped_rejections > 0 { " class=\"warn\"" } else { "" },
        t("Бас тартылған, тек саналған", "Отказов, только подсчитанных"),
        a.capped_rejections
    ));
    Ok(page.render(t("Ауытқулар", "Аномалии"), "anomalies", &body))
}
