//! QR images of tokens: version 8, error correction M, byte mode, a 4-module quiet zone.
//!
//! The `qrcode` crate encodes the data, computes the Reed–Solomon codewords and places the
//! modules. Its automatic mask choice builds and scores eight full canvases (~1.1 ms per code,
//! which alone would cap issuance below 2,000 tokens/s on two cores), so the mask is chosen
//! here with the same ISO/IEC 18004 penalty rules evaluated on rows of bits (one `u64` per row,
//! a few microseconds for all eight masks). A test checks the result module for module against
//! the crate's own `apply_mask`.

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, ImageEncoder};
use qrcode::bits::Bits;
use qrcode::canvas::{Canvas, MaskPattern, Module};
use qrcode::{EcLevel, Version};
use std::sync::OnceLock;

/// Version 8 holds 152 bytes at level M: every 140-character token fits, always the same size.
pub const VERSION: i16 = 8;
/// Modules per side.
pub const WIDTH: usize = 17 + 4 * VERSION as usize;
/// Light modules around the symbol, as the standard asks.
pub const QUIET_ZONE: usize = 4;
/// Pixels per module in PNGs: 456 px square, sharp on a phone and easy for a cheap scanner.
pub const PNG_MODULE_PX: usize = 8;

const LINE: u64 = (1 << WIDTH) - 1;

const PATTERNS: [MaskPattern; 8] = [
    MaskPattern::Checkerboard,
    MaskPattern::HorizontalLines,
    MaskPattern::VerticalLines,
    MaskPattern::DiagonalLines,
    MaskPattern::LargeCheckerboard,
    MaskPattern::Fields,
    MaskPattern::Diamonds,
    MaskPattern::Meadow,
];

#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("{0} bytes do not fit a version {VERSION} QR code at level M")]
    TooLong(usize),
}

/// The modules of one symbol: bit `x` of `rows[y]` is the module at column `x`, row `y`
/// (set = dark). The quiet zone is not included.
#[derive(Clone, PartialEq, Eq)]
pub struct Matrix {
    rows: [u64; WIDTH],
}

impl std::fmt::Debug for Matrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Matrix(v{VERSION}, {WIDTH}x{WIDTH})")
    }
}

/// What is the same for every version-8 symbol, computed once: the functional patterns, where
/// each bit of the codeword stream goes, and for each mask pattern the modules a fresh canvas
/// shows after `apply_mask` (the mask bits, and the format information in the format area).
struct Tables {
    /// Dark modules of the finder, timing, alignment and version patterns.
    functional_dark: [u64; WIDTH],
    /// Modules that carry data and error correction (everything not functional).
    data: [u64; WIDTH],
    data_cols: [u64; WIDTH],
    /// `(x, y)` of each bit of the codeword stream, most significant bit of each byte first.
    placement: Vec<(u8, u8)>,
    masks: [[u64; WIDTH]; 8],
    mask_cols: [[u64; WIDTH]; 8],
    format: [u64; WIDTH],
    format_cols: [u64; WIDTH],
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut functional = Canvas::new(Version::Normal(VERSION), EcLevel::M);
        functional.draw_all_functional_patterns();
        let data = rows_where(&functional, |m| m == Module::Empty);
        let mut masks = [[0u64; WIDTH]; 8];
        for (i, p) in PATTERNS.iter().enumerate() {
            let mut c = Canvas::new(Version::Normal(VERSION), EcLevel::M);
            c.apply_mask(*p);
            masks[i] = rows_where(&c, |m| m.is_dark());
        }
        let mut format = [0u64; WIDTH];
        for (y, row) in format.iter_mut().enumerate() {
            for x in 0..WIDTH {
                let in_column_8 = x == 8 && (y <= 8 || y >= WIDTH - 8);
                let in_row_8 = y == 8 && (x <= 8 || x >= WIDTH - 8);
                // Row and column 6 are the timing patterns that cross the format area.
                if (in_column_8 || in_row_8) && x != 6 && y != 6 {
                    *row |= 1 << x;
                }
            }
        }
        Tables {
            functional_dark: rows_where(&functional, |m| m.is_dark()),
            data_cols: transpose(&data),
            placement: placement(&data),
            data,
            mask_cols: masks.map(|m| transpose(&m)),
            masks,
            format_cols: transpose(&format),
            format,
        }
    })
}

/// ISO/IEC 18004 §7.7.3: two-module-wide columns from the right, alternately upwards and
/// downwards, right module before left, skipping the vertical timing pattern and every
/// functional module.
fn placement(data: &[u64; WIDTH]) -> Vec<(u8, u8)> {
    let mut order = Vec::with_capacity(WIDTH * WIDTH);
    let mut right = WIDTH as i32 - 1;
    let mut upwards = true;
    while right > 0 {
        if right == 6 {
            right -= 1;
        }
        for i in 0..WIDTH {
            let y = if upwards { WIDTH - 1 - i } else { i };
            for x in [right as usize, right as usize - 1] {
                if data[y] >> x & 1 == 1 {
                    order.push((x as u8, y as u8));
                }
            }
        }
        upwards = !upwards;
        right -= 2;
    }
    order
}

fn rows_where(c: &Canvas, f: impl Fn(Module) -> bool) -> [u64; WIDTH] {
    let mut rows = [0u64; WIDTH];
    for (y, row) in rows.iter_mut().enumerate() {
        for x in 0..WIDTH {
            if f(c.get(x as i16, y as i16)) {
                *row |= 1 << x;
            }
        }
    }
    rows
}

fn transpose(rows: &[u64; WIDTH]) -> [u64; WIDTH] {
    let mut cols = [0u64; WIDTH];
    for (y, row) in rows.iter().enumerate() {
        let mut bits = *row;
        while bits != 0 {
            let x = bits.trailing_zeros() as usize;
            cols[x] |= 1 << y;
            bits &= bits - 1;
        }
    }
    cols
}

/// The symbol with mask `i` applied: functional modules as drawn, data modules flipped where
/// the mask is set, the format area as the mask's format information.
fn compose(
    base: &[u64; WIDTH],
    data: &[u64; WIDTH],
    mask: &[u64; WIDTH],
    format: &[u64; WIDTH],
) -> [u64; WIDTH] {
    let mut out = [0u64; WIDTH];
    for y in 0..WIDTH {
        out[y] = (base[y] & !data[y] & !format[y])
            | ((base[y] ^ mask[y]) & data[y])
            | (mask[y] & format[y]);
    }
    out
}

/// ISO/IEC 18004 §7.8.3 rules 1 and 3 for one direction, rule 2 on rows (it is symmetric).
fn line_penalty(lines: &[u64; WIDTH]) -> u32 {
    let mut score = 0;
    for &l in lines {
        // Rule 1: a run of n ≥ 5 same-coloured modules costs n − 2.
        let eq = !(l ^ (l >> 1)) & (LINE >> 1);
        let five = eq & (eq >> 1) & (eq >> 2) & (eq >> 3);
        let starts = five & !(five << 1);
        score += five.count_ones() + 2 * starts.count_ones();
        // Rule 3: 1:1:3:1:1 finder-like runs with four light modules on one side (the quiet
        // zone counts as light) cost 40 each.
        let x = l << 4;
        let n = !x & ((1u64 << (WIDTH + 8)) - 1);
        let core = x & (n >> 1) & (x >> 2) & (x >> 3) & (x >> 4) & (n >> 5) & (x >> 6);
        let after = core & (n >> 7) & (n >> 8) & (n >> 9) & (n >> 10);
        let before = n
            & (n >> 1)
            & (n >> 2)
            & (n >> 3)
            & (x >> 4)
            & (n >> 5)
            & (x >> 6)
            & (x >> 7)
            & (x >> 8)
            & (n >> 9)
            & (x >> 10);
        score += 40 * (after.count_ones() + before.count_ones());
    }
    score
}

fn penalty(rows: &[u64; WIDTH], cols: &[u64; WIDTH]) -> u32 {
    let mut score = line_penalty(rows) + line_penalty(cols);
    // Rule 2: every 2×2 block of one colour costs 3.
    for y in 0..WIDTH - 1 {
        let (a, b) = (rows[y], rows[y + 1]);
        let same = !(a ^ b);
        let block = same & (same >> 1) & !(a ^ (a >> 1)) & (LINE >> 1);
        score += 3 * block.count_ones();
    }
    // Rule 4: 10 per full 5 % the dark share is away from 50 %.
    let dark: u32 = rows.iter().map(|r| r.count_ones()).sum();
    let total = (WIDTH * WIDTH) as u32;
    score + 10 * ((2 * dark).abs_diff(total) * 10 / total)
}

impl Matrix {
    /// Encodes `data` in byte mode at version 8, level M.
    pub fn encode(data: &[u8]) -> Result<Matrix, QrError> {
        let too_long = || QrError::TooLong(data.len());
        let version = Version::Normal(VERSION);
        let mut bits = Bits::new(version);
        bits.push_byte_data(data).map_err(|_| too_long())?;
        bits.push_terminator(EcLevel::M).map_err(|_| too_long())?;
        let (codewords, ec) =
            qrcode::ec::construct_codewords(&bits.into_bytes(), version, EcLevel::M)
                .map_err(|_| too_long())?;
        let t = tables();
        let mut base = t.functional_dark;
        let stream = codewords.iter().chain(ec.iter());
        for (byte, at) in stream.zip(t.placement.chunks_exact(8)) {
            for (bit, &(x, y)) in at.iter().enumerate() {
                if byte >> (7 - bit) & 1 == 1 {
                    base[usize::from(y)] |= 1 << x;
                }
            }
        }
        let data_modules = &t.data;
        let data_cols = &t.data_cols;
        let base_cols = transpose(&base);
        let best = (0..PATTERNS.len())
            .min_by_key(|&i| {
                let rows = compose(&base, data_modules, &t.masks[i], &t.format);
                let cols = compose(&base_cols, data_cols, &t.mask_cols[i], &t.format_cols);
                (penalty(&rows, &cols), i)
            })
            .expect("eight patterns");
        Ok(Matrix {
            rows: compose(&base, data_modules, &t.masks[best], &t.format),
        })
    }

    pub fn width(&self) -> usize {
        WIDTH
    }

    pub fn is_dark(&self, x: usize, y: usize) -> bool {
        x < WIDTH && y < WIDTH && self.rows[y] >> x & 1 == 1
    }

    /// A scalable SVG, one unit per module, quiet zone included; CSS decides the size.
    ///
    /// Dark runs are drawn as horizontal strokes one unit wide (`M x y.5 h len`, then `m gap 0
    /// h len` along the row): half the bytes of one rectangle per run, and this text travels in
    /// every JSON answer.
    pub fn svg(&self) -> String {
        let side = WIDTH + 2 * QUIET_ZONE;
        let mut out = String::with_capacity(6_000);
        out.push_str(r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 "#);
        push_num(&mut out, side);
        out.push(' ');
        push_num(&mut out, side);
        out.push_str(r##"" shape-rendering="crispEdges" role="img"><path fill="#fff" d="M0 0h"##);
        push_num(&mut out, side);
        out.push('v');
        push_num(&mut out, side);
        out.push_str(r##"H0z"/><path stroke="#000" d=""##);
        for (y, &row) in self.rows.iter().enumerate() {
            let mut bits = row;
            let mut pen: Option<usize> = None;
            while bits != 0 {
                let start = bits.trailing_zeros() as usize;
                let len = (!(bits >> start)).trailing_zeros() as usize;
                match pen {
                    None => {
                        out.push('M');
                        push_num(&mut out, start + QUIET_ZONE);
                        out.push(' ');
                        push_num(&mut out, y + QUIET_ZONE);
                        out.push_str(".5h");
                    }
                    Some(at) => {
                        out.push('m');
                        push_num(&mut out, start - at);
                        out.push_str(" 0h");
                    }
                }
                push_num(&mut out, len);
                pen = Some(start + len);
                bits &= !(((1u64 << len) - 1) << start);
            }
        }
        out.push_str(r#""/></svg>"#);
        out
    }

    /// A greyscale PNG, `module_px` pixels per module, quiet zone included.
    pub fn png(&self, module_px: usize) -> Vec<u8> {
        let module_px = module_px.clamp(1, 32);
        let side = (WIDTH + 2 * QUIET_ZONE) * module_px;
        let mut pixels = vec![255u8; side * side];
        for (y, &row) in self.rows.iter().enumerate() {
            let top = (y + QUIET_ZONE) * module_px;
            let first = &mut pixels[top * side..(top + 1) * side];
            for x in 0..WIDTH {
                if row >> x & 1 == 1 {
                    let left = (x + QUIET_ZONE) * module_px;
                    first[left..left + module_px].fill(0);
                }
            }
            // The other pixel rows of this module row are copies of the first.
            for dy in 1..module_px {
                pixels.copy_within(top * side..(top + 1) * side, (top + dy) * side);
            }
        }
        let mut out = Vec::with_capacity(8 * 1024);
        PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Adaptive)
            .write_image(&pixels, side as u32, side as u32, ExtendedColorType::L8)
            .expect("encoding to memory cannot fail");
        out
    }
}

/// Numbers here are below 100: written digit by digit, skipping `fmt` on the hot path.
fn push_num(out: &mut String, n: usize) {
    if n >= 10 {
        out.push((b'0' + (n / 10 % 10) as u8) as char);
    }
    out.push((b'0' + (n % 10) as u8) as char);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(seed: u8) -> String {
        let key = shared::KeyPair::from_seed([seed; 32]);
        shared::token::sign(
            &shared::token::TokenRequest {
                voucher_id: uuid::Uuid::from_u128(u128::from(seed) * 7_919),
                school_code: 1,
                issued_at: 1_795_406_400,
                expires_at: 1_795_407_000,
            },
            &key,
        )
    }

    #[test]
    fn placement_and_masks_match_the_crates_own_drawing() {
        for seed in [3, 4, 5] {
            placement_and_masks_match_for(&token(seed));
        }
    }

    fn placement_and_masks_match_for(data: &str) {
        let version = Version::Normal(VERSION);
        let mut bits = Bits::new(version);
        bits.push_byte_data(data.as_bytes()).unwrap();
        bits.push_terminator(EcLevel::M).unwrap();
        let (codewords, ec) =
            qrcode::ec::construct_codewords(&bits.into_bytes(), version, EcLevel::M).unwrap();
        let mut canvas = Canvas::new(version, EcLevel::M);
        canvas.draw_all_functional_patterns();
        canvas.draw_data(&codewords, &ec);
        let base = rows_where(&canvas, |m| m.is_dark());
        let data_modules = rows_where(&canvas, |m| {
            matches!(m, Module::Unmasked(_) | Module::Empty)
        });
        let t = tables();
        assert_eq!(data_modules, t.data);
        assert_eq!(
            t.placement.len(),
            (codewords.len() + ec.len()) * 8,
            "every module used"
        );
        // Our placement of the codewords gives the crate's drawing, module for module.
        let stream: Vec<u8> = codewords.iter().chain(ec.iter()).copied().collect();
        let mut placed = t.functional_dark;
        for (i, &(x, y)) in t.placement.iter().enumerate() {
            if stream[i / 8] >> (7 - i % 8) & 1 == 1 {
                placed[usize::from(y)] |= 1 << x;
            }
        }
        assert_eq!(placed, base);
        for (i, p) in PATTERNS.iter().enumerate() {
            let mut masked = canvas.clone();
            masked.apply_mask(*p);
            let expected = rows_where(&masked, |m| m.is_dark());
            assert_eq!(
                compose(&base, &data_modules, &t.masks[i], &t.format),
                expected,
                "mask {i}"
            );
            assert_eq!(
                compose(
                    &transpose(&base),
                    &transpose(&data_modules),
                    &t.mask_cols[i],
                    &t.format_cols
                ),
                transpose(&expected),
                "mask {i} columns"
            );
        }
    }

    #[test]
    fn penalty_rules_count_what_the_standard_says() {
        // An all-light symbol: rule 1 (each line one run of 49: 47 points) in 98 lines, rule 2
        // for every 2x2 block, rule 4 at 100 % light.
        let light = [0u64; WIDTH];
        let blocks = ((WIDTH - 1) * (WIDTH - 1)) as u32;
        assert_eq!(penalty(&light, &light), 98 * 47 + 3 * blocks + 100);
        // A row starting with 1011101 and light after it: rule 1 sees one light run of 42
        // (40 points) instead of 47; rule 3 sees the pattern with the light quiet zone before
        // it and with light modules after it (80 points).
        let mut rows = [0u64; WIDTH];
        rows[0] = 0b101_1101;
        assert_eq!(line_penalty(&rows), 48 * 47 + 40 + 80);
        // Inside a dark row (dark 0..=20, light 21, dark 22..=24, light 25, dark 26..=48) the
        // same 1011101 has no light margin: only the runs of 21 and 23 dark modules count.
        rows[0] = LINE & !(0b100_0100 << 19);
        assert_eq!(rows[0].count_ones() as usize, WIDTH - 2);
        assert_eq!(line_penalty(&rows), 48 * 47 + (21 - 2) + (23 - 2));
    }

    #[test]
    fn png_and_svg_decode_to_the_token() {
        for seed in 1..=12u8 {
            let data = token(seed);
            let m = Matrix::encode(data.as_bytes()).unwrap();
            let png = m.png(PNG_MODULE_PX);
            let img = image::load_from_memory(&png).unwrap().to_luma8();
            assert_eq!(
                img.width() as usize,
                (WIDTH + 2 * QUIET_ZONE) * PNG_MODULE_PX
            );
            let mut prepared = rqrr::PreparedImage::prepare_from_greyscale(
                img.width() as usize,
                img.height() as usize,
                |x, y| img.get_pixel(x as u32, y as u32).0[0],
            );
            let grids = prepared.detect_grids();
            assert_eq!(grids.len(), 1, "seed {seed}");
            let (meta, content) = grids[0].decode().unwrap();
            assert_eq!(content, data);
            assert_eq!(meta.version.0, VERSION as usize);
            assert_eq!(meta.ecc_level, 0, "level M");

            let svg = m.svg();
            assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
            assert_eq!(svg_modules(&svg), m, "seed {seed}");
        }
    }

    #[test]
    fn data_too_long_is_an_error() {
        assert!(Matrix::encode(&[b'a'; 152]).is_ok());
        assert!(matches!(
            Matrix::encode(&[b'a'; 153]),
            Err(QrError::TooLong(153))
        ));
    }

    /// Reads the dark modules back from the SVG path: `M x y.5` starts a row, `m dx 0` moves
    /// along it, `h len` draws a run.
    fn svg_modules(svg: &str) -> Matrix {
        let d = svg.split(r##"stroke="#000" d=""##).nth(1).unwrap();
        let d = d.split('"').next().unwrap();
        let mut rows = [0u64; WIDTH];
        let (mut x, mut y) = (0usize, 0usize);
        let mut rest = d;
        while let Some(cmd) = rest.chars().next() {
            let end = rest[1..]
                .find(|c: char| c.is_ascii_alphabetic())
                .map_or(rest.len(), |i| i + 1);
            let args: Vec<&str> = rest[1..end].split(' ').collect();
            match cmd {
                'M' => {
                    x = args[0].parse::<usize>().unwrap() - QUIET_ZONE;
                    let row = args[1].strip_suffix(".5").expect("strokes on half rows");
                    y = row.parse::<usize>().unwrap() - QUIET_ZONE;
                }
                'm' => {
                    assert_eq!(args[1], "0", "moves stay in the row");
                    x += args[0].parse::<usize>().unwrap();
                }
                'h' => {
                    let len: usize = args[0].parse().unwrap();
                    for i in x..x + len {
                        rows[y] |= 1 << i;
                    }
                    x += len;
                }
                other => panic!("unexpected path command {other}"),
            }
            rest = &rest[end..];
        }
        Matrix { rows }
    }
}
