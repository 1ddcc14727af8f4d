//! Camera-like pictures of a QR code, made from a rendered token: placed on a frame through a
//! perspective transform, blurred, noised, JPEG-compressed. Used by the decoder robustness test
//! and the frame benchmark.
#![allow(dead_code)]

use image::{GrayImage, Luma};
use rand::{Rng, SeedableRng};

/// The token as a QR picture: `px` pixels per module, 4 modules of quiet zone, error
/// correction M (what the wallet renders).
pub fn render_qr(text: &str, px: u32) -> GrayImage {
    let code =
        qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M).unwrap();
    let n = code.width() as u32;
    let colors = code.to_colors();
    let quiet = 4;
    let side = (n + 2 * quiet) * px;
    GrayImage::from_fn(side, side, |x, y| {
        let (mx, my) = (x / px, y / px);
        if mx < quiet || my < quiet || mx >= n + quiet || my >= n + quiet {
            return Luma([255]);
        }
        match colors[((my - quiet) * n + (mx - quiet)) as usize] {
            qrcode::Color::Dark => Luma([0]),
            qrcode::Color::Light => Luma([255]),
        }
    })
}

/// Solves the 3×3 homography mapping `from[i]` to `to[i]`.
fn homography(from: [(f64, f64); 4], to: [(f64, f64); 4]) -> [f64; 9] {
    let mut a = [[0f64; 9]; 8];
    for i in 0..4 {
        let (x, y) = from[i];
        let (u, v) = to[i];
        a[2 * i] = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, u];
        a[2 * i + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y, v];
    }
    for col in 0..8 {
        let pivot = (col..8)
            .max_by(|&p, &q| a[p][col].abs().total_cmp(&a[q][col].abs()))
            .unwrap();
        a.swap(col, pivot);
        let pivot_row = a[col];
        for (r, row) in a.iter_mut().enumerate() {
            if r != col {
                let f = row[col] / pivot_row[col];
                for (x, p) in row.iter_mut().zip(pivot_row.iter()).skip(col) {
                    *x -= f * p;
                }
            }
        }
    }
    let mut h = [0f64; 9];
    for (i, (hi, row)) in h.iter_mut().zip(a.iter()).enumerate() {
        *hi = row[8] / row[i];
    }
    h[8] = 1.0;
    h
}

/// Draws `code` into a `w`×`h` frame so that its corners land on `quad` (clockwise from top
/// left), on an unevenly lit grey background.
pub fn place(code: &GrayImage, w: u32, h: u32, quad: [(f64, f64); 4]) -> GrayImage {
    let s = f64::from(code.width());
    // Map frame → code (inverse), so every frame pixel samples the code once.
    let m = homography(quad, [(0.0, 0.0), (s, 0.0), (s, s), (0.0, s)]);
    GrayImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (f64::from(x) + 0.5, f64::from(y) + 0.5);
        let d = m[6] * fx + m[7] * fy + m[8];
        let u = (m[0] * fx + m[1] * fy + m[2]) / d;
        let v = (m[3] * fx + m[4] * fy + m[5]) / d;
        let background =
            150.0 + 60.0 * (f64::from(x) / f64::from(w)) - 30.0 * (f64::from(y) / f64::from(h));
        if u < 0.0 || v < 0.0 || u >= s - 1.0 || v >= s - 1.0 {
            return Luma([background as u8]);
        }
        // Bilinear sample; paper is not pure white and ink not pure black under a camera.
        let (x0, y0) = (u.floor() as u32, v.floor() as u32);
        let (dx, dy) = (u - u.floor(), v - v.floor());
        let p = |xx: u32, yy: u32| f64::from(code.get_pixel(xx, yy)[0]);
        let top = p(x0, y0) * (1.0 - dx) + p(x0 + 1, y0) * dx;
        let bottom = p(x0, y0 + 1) * (1.0 - dx) + p(x0 + 1, y0 + 1) * dx;
        let value = top * (1.0 - dy) + bottom * dy;
        Luma([(35.0 + value * (200.0 / 255.0)) as u8])
    })
}

/// A square of side `side` centred at (`cx`, `cy`), rotated by `degrees`.
pub fn rotated_square(cx: f64, cy: f64, side: f64, degrees: f64) -> [(f64, f64); 4] {
    let (sin, cos) = degrees.to_radians().sin_cos();
    let half = side / 2.0;
    let corner = |x: f64, y: f64| (cx + x * cos - y * sin, cy + x * sin + y * cos);
    [
        corner(-half, -half),
        corner(half, -half),
        corner(half, half),
        corner(-half, half),
    ]
}

pub fn blur(img: &GrayImage, sigma: f32) -> GrayImage {
    image::imageops::blur(img, sigma)
}

pub fn noise(img: &GrayImage, amplitude: i32, seed: u64) -> GrayImage {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = img.clone();
    for p in out.pixels_mut() {
        let v = i32::from(p[0]) + rng.gen_range(-amplitude..=amplitude);
        p[0] = v.clamp(0, 255) as u8;
    }
    out
}

pub fn jpeg(img: &GrayImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(img)
        .unwrap();
    out
}

/// A typical counter camera frame: 640×480, the code about 60% of the height, slightly turned
/// and tilted, a little soft and noisy, JPEG-compressed.
pub fn camera_frame(token: &str) -> Vec<u8> {
    let code = render_qr(token, 4);
    let quad = [
        (190.0, 95.0),
        (455.0, 105.0),
        (445.0, 375.0),
        (200.0, 385.0),
    ];
    let frame = place(&code, 640, 480, quad);
    jpeg(&noise(&blur(&frame, 0.8), 6, 7), 85)
}
