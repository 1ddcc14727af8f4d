//! QR codes from pictures (files given with `--image`, camera frames from the kiosk page),
//! decoded in pure Rust.
//!
//! Two decoders are compiled in. `quircs` is about 3× faster on a 640×480 frame; `rqrr` reads
//! some codes quircs misses (and the other way round), so the default tries quircs first and
//! falls back to rqrr only when quircs found nothing — the common, clean frame costs the quircs
//! time alone. The robustness test and the benchmark that back this choice are in
//! `tests/image_decoders.rs` and `benches/scan.rs`; numbers in `docs/benchmarks.md`.

use image::GrayImage;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoder {
    Quircs,
    Rqrr,
    /// quircs, then rqrr when quircs found nothing.
    QuircsThenRqrr,
}

pub const DEFAULT_DECODER: Decoder = Decoder::QuircsThenRqrr;

/// Pictures larger than this (longest side, pixels) are scaled down first: phone photos are
/// 12+ megapixels and a QR code on them is large enough to survive it.
pub const MAX_SIDE: u32 = 1600;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot read image {path}: {detail}")]
    Read { path: String, detail: String },
    #[error("image is not a PNG or JPEG picture: {0}")]
    Format(String),
}

/// Every distinct QR text found, in the order found.
pub fn decode_gray(img: &GrayImage, decoder: Decoder) -> Vec<String> {
    match decoder {
        Decoder::Quircs => with_quircs(img),
        Decoder::Rqrr => with_rqrr(img),
        Decoder::QuircsThenRqrr => {
            let found = with_quircs(img);
            if found.is_empty() {
                with_rqrr(img)
            } else {
                found
            }
        }
    }
}

fn push_unique(out: &mut Vec<String>, text: String) {
    if !out.contains(&text) {
        out.push(text);
    }
}

fn with_quircs(img: &GrayImage) -> Vec<String> {
    let mut quirc = quircs::Quirc::default();
    let mut out = Vec::new();
    let codes = quirc.identify(img.width() as usize, img.height() as usize, img.as_raw());
    for code in codes.flatten() {
        if let Ok(data) = code.decode() {
            if let Ok(text) = String::from_utf8(data.payload) {
                push_unique(&mut out, text);
            }
        }
    }
    out
}

fn with_rqrr(img: &GrayImage) -> Vec<String> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let raw = img.as_raw();
    let mut prepared = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| raw[y * w + x]);
    let mut out = Vec::new();
    for grid in prepared.detect_grids() {
        if let Ok((_, text)) = grid.decode() {
            push_unique(&mut out, text);
        }
    }
    out
}

/// Decodes an encoded picture (PNG or JPEG bytes).
pub fn decode_bytes(bytes: &[u8], decoder: Decoder) -> Result<Vec<String>, ImageError> {
    let img = image::load_from_memory(bytes).map_err(|e| ImageError::Format(e.to_string()))?;
    Ok(decode_picture(img, decoder))
}

pub fn decode_file(path: &Path, decoder: Decoder) -> Result<Vec<String>, ImageError> {
    let bytes = std::fs::read(path).map_err(|e| ImageError::Read {
        path: path.display().to_string(),
        detail: e.to_string(),
    })?;
    let img = image::load_from_memory(&bytes).map_err(|e| ImageError::Read {
        path: path.display().to_string(),
        detail: e.to_string(),
    })?;
    Ok(decode_picture(img, decoder))
}

fn decode_picture(img: image::DynamicImage, decoder: Decoder) -> Vec<String> {
    let gray = img.into_luma8();
    if gray.width().max(gray.height()) > MAX_SIDE {
        let scale = f64::from(MAX_SIDE) / f64::from(gray.width().max(gray.height()));
        let small = image::imageops::resize(
            &gray,
            ((f64::from(gray.width()) * scale) as u32).max(1),
            ((f64::from(gray.height()) * scale) as u32).max(1),
            image::imageops::FilterType::Triangle,
        );
        let found = decode_gray(&small, decoder);
        if !found.is_empty() {
            return found;
        }
    }
    decode_gray(&gray, decoder)
}
