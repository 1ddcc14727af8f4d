//! Which pure-Rust QR decoder reads camera pictures of a token: photos made from a rendered
//! code — scaled, rotated, blurred, noisy, in perspective, JPEG-compressed. Run with
//! `--nocapture` to see the table recorded in docs/benchmarks.md.

mod common;

use canteen_terminal::image_input::{decode_bytes, decode_gray, Decoder};
use common::frames::*;
use common::World;
use image::GrayImage;
use shared::wire::VoucherStatus;

struct Case {
    name: String,
    image: GrayImage,
    /// Mild enough that the terminal must read it.
    must_read: bool,
}

fn cases(token: &str) -> Vec<Case> {
    let mut out = Vec::new();
    let mut add = |name: String, image: GrayImage, must_read: bool| {
        out.push(Case {
            name,
            image,
            must_read,
        })
    };
    for px in [2u32, 3, 4, 6] {
        let code = render_qr(token, px);
        let side = f64::from(code.width());
        add(
            format!("scale {px} px/module"),
            place(&code, 640, 480, rotated_square(320.0, 240.0, side, 0.0)),
            px >= 3,
        );
    }
    let code = render_qr(token, 4);
    for degrees in [10.0, 30.0, 45.0, 90.0, 170.0] {
        add(
            format!("rotated {degrees}°"),
            place(
                &code,
                640,
                480,
                rotated_square(320.0, 240.0, 240.0, degrees),
            ),
            true,
        );
    }
    let straight = place(&code, 640, 480, rotated_square(320.0, 240.0, 260.0, 3.0));
    for sigma in [0.8f32, 1.2, 1.6, 2.0, 2.6] {
        add(
            format!("blur σ={sigma}"),
            blur(&straight, sigma),
            sigma <= 1.2,
        );
    }
    for amplitude in [15, 30, 50, 70] {
        add(
            format!("noise ±{amplitude}"),
            noise(&straight, amplitude, 11),
            amplitude <= 30,
        );
    }
    type Quad = [(f64, f64); 4];
    let tilts: [(&str, Quad, bool); 4] = [
        (
            "perspective mild",
            [
                (190.0, 95.0),
                (455.0, 105.0),
                (445.0, 375.0),
                (200.0, 385.0),
            ],
            true,
        ),
        (
            "perspective left",
            [
                (170.0, 60.0),
                (430.0, 120.0),
                (430.0, 360.0),
                (170.0, 420.0),
            ],
            true,
        ),
        (
            "perspective top",
            [(230.0, 90.0), (410.0, 90.0), (470.0, 400.0), (170.0, 400.0)],
            false,
        ),
        (
            "perspective strong",
            [
                (150.0, 40.0),
                (420.0, 150.0),
                (420.0, 330.0),
                (150.0, 440.0),
            ],
            false,
        ),
    ];
    for (name, quad, must) in tilts {
        add(name.to_owned(), place(&code, 640, 480, quad), must);
    }
    for q in [30u8, 60] {
        let bytes = jpeg(&straight, q);
        let img = image::load_from_memory(&bytes).unwrap().into_luma8();
        add(format!("jpeg q={q}"), img, true);
    }
    let combo = image::load_from_memory(&camera_frame(token))
        .unwrap()
        .into_luma8();
    add("camera frame (all mild)".to_owned(), combo, true);
    out
}

#[test]
fn decoders_on_camera_like_pictures() {
    let world = World::new();
    let token = world.token(
        common::voucher(1, VoucherStatus::Active).voucher_id,
        common::monday_noon(),
    );
    let decoders = [Decoder::Quircs, Decoder::Rqrr, Decoder::QuircsThenRqrr];
    let mut totals = [0usize; 3];
    let cases = cases(&token);
    println!("| picture | quircs | rqrr | quircs→rqrr |\n| --- | --- | --- | --- |");
    for case in &cases {
        let mut row = format!("| {} |", case.name);
        let mut read = [false; 3];
        for (i, d) in decoders.iter().enumerate() {
            let found = decode_gray(&case.image, *d);
            // A decoder must never return a wrong text.
            assert!(
                found.iter().all(|t| t == &token),
                "{}: {found:?}",
                case.name
            );
            read[i] = found.len() == 1;
            totals[i] += usize::from(read[i]);
            row.push_str(if read[i] { " yes |" } else { " no |" });
        }
        println!("{row}");
        assert_eq!(
            read[2],
            read[0] || read[1],
            "fallback reads what either reads"
        );
        if case.must_read {
            assert!(read[2], "the default decoder must read: {}", case.name);
        }
    }
    println!(
        "| **read** | {}/{n} | {}/{n} | {}/{n} |",
        totals[0],
        totals[1],
        totals[2],
        n = cases.len()
    );
    assert!(totals[2] >= totals[0] && totals[2] >= totals[1]);
}

#[test]
fn encoded_pictures_and_garbage() {
    let world = World::new();
    let token = world.token(
        common::voucher(1, VoucherStatus::Active).voucher_id,
        common::monday_noon(),
    );
    let found = decode_bytes(&camera_frame(&token), Decoder::QuircsThenRqrr).unwrap();
    assert_eq!(found, vec![token]);
    assert!(decode_bytes(b"not an image", Decoder::QuircsThenRqrr).is_err());
    let blank = GrayImage::from_pixel(640, 480, image::Luma([128]));
    assert!(decode_gray(&blank, Decoder::QuircsThenRqrr).is_empty());
}
