//! QR codes from pictures (files given with `--image`, camera frames from the kiosk page),
//! decoded in pure Rust.
//!
//! Two decoders are compiled in. `quircs` is about 3× faster on a 640×480 frame; `rqrr` reads
//! some codes quircs misses (and the other way round), so the default tries quircs first and
//! falls back to rqrr only when quircs found nothing — the common, clean frame costs the quircs
//! time alone. The robustness test and the benchmark that back this choice are in
//! `tests/image_decoders.rs` and `benches/scan.rs`; numbers in `docs/benchmarks.md`.

use image::GrayImage;
use std::io::Cursor;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoder {
    Quircs,
    Rqrr,
    /// quircs, then rqrr when quircs found nothing.
    QuircsThenRqrr,
}

pub const DEFAULT_DECODER: Decoder = Decoder::QuircsThenRqrr;

/// Pictures larger than this (longest side, pixels) are scaled down before the QR search: phone
/// photos are 12+ megapixels and a QR code on them is large enough to survive it, and the search
/// costs grow with the pixels searched, far faster on noise than on a clean frame.
pub const MAX_SIDE: u32 = 1600;

/// What one picture may cost. The camera's own frames are at most 1920×1080; phone photos given
/// to `scan --image` are up to 4096 on a side after the phone's own scaling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Longest side accepted, read from the image header before anything is decoded.
    pub max_side: u32,
    /// Pixels accepted (width × height), likewise.
    pub max_pixels: u64,
    /// Bytes the decoder may allocate for one picture.
    pub max_alloc: u64,
    /// Time for one picture; the slower fallback search is skipped once it is spent, and the
    /// kiosk answers `too_slow` when a frame is not done in it.
    pub time: Duration,
}

pub const BUDGET: Budget = Budget {
    max_side: 4096,
    max_pixels: 4096 * 4096,
    max_alloc: 96 * 1024 * 1024,
    time: Duration::from_secs(2),
};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot read image {path}: {detail}")]
    Read { path: String, detail: String },
    #[error("Сурет PNG не JPEG емес / Изображение не PNG и не JPEG: {0}")]
    Format(String),
    #[error(
        "Сурет тым үлкен: {width}×{height}, ең көбі {max}×{max} / \
         Изображение слишком большое: {width}×{height}, не больше {max}×{max}"
    )]
    TooLarge { width: u32, height: u32, max: u32 },
    #[error("Суретті өңдеу уақыты бітті ({0:?}) / Время на разбор изображения истекло ({0:?})")]
    TooSlow(Duration),
}

impl ImageError {
    /// The stable code the kiosk answers with.
    pub fn code(&self) -> &'static str {
        match self {
            ImageError::Read { .. } | ImageError::Format(_) => "bad_image",
            ImageError::TooLarge { .. } => "image_too_large",
            ImageError::TooSlow(_) => "too_slow",
        }
    }
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

/// Decodes an encoded picture (PNG or JPEG bytes) within [`BUDGET`].
pub fn decode_bytes(bytes: &[u8], decoder: Decoder) -> Result<Vec<String>, ImageError> {
    decode_bytes_within(bytes, decoder, &BUDGET)
}

/// Decodes an encoded picture within `budget`: the size is checked from the header first, so a
/// small file that declares a huge picture costs nothing.
pub fn decode_bytes_within(
    bytes: &[u8],
    decoder: Decoder,
    budget: &Budget,
) -> Result<Vec<String>, ImageError> {
    let started = Instant::now();
    let img = load_bounded(bytes, budget)?;
    decode_picture(img, decoder, started, budget)
}

fn reader(bytes: &[u8]) -> Result<image::ImageReader<Cursor<&[u8]>>, ImageError> {
    let reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError::Format(e.to_string()))?;
    match reader.format() {
        Some(image::ImageFormat::Png | image::ImageFormat::Jpeg) => Ok(reader),
        Some(other) => Err(ImageError::Format(format!("{other:?}"))),
        None => Err(ImageError::Format("unknown format".into())),
    }
}

fn load_bounded(bytes: &[u8], budget: &Budget) -> Result<image::DynamicImage, ImageError> {
    let (width, height) = reader(bytes)?
        .into_dimensions()
        .map_err(|e| ImageError::Format(e.to_string()))?;
    if width.max(height) > budget.max_side
        || u64::from(width) * u64::from(height) > budget.max_pixels
    {
        return Err(ImageError::TooLarge {
            width,
            height,
            max: budget.max_side,
        });
    }
    let mut reader = reader(bytes)?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(budget.max_side);
    limits.max_image_height = Some(budget.max_side);
    limits.max_alloc = Some(budget.max_alloc);
    reader.limits(limits);
    reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => ImageError::TooLarge {
            width,
            height,
            max: budget.max_side,
        },
        other => ImageError::Format(other.to_string()),
    })
}

/// Files larger than this are not read: a 4096×4096 JPEG or PNG of a photo is well under it.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

pub fn decode_file(path: &Path, decoder: Decoder) -> Result<Vec<String>, ImageError> {
    let read_error = |detail: String| ImageError::Read {
        path: path.display().to_string(),
        detail,
    };
    let file = std::fs::File::open(path).map_err(|e| read_error(e.to_string()))?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, MAX_FILE_BYTES + 1),
        &mut bytes,
    )
    .map_err(|e| read_error(e.to_string()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(read_error(format!(
            "larger than {} MB",
            MAX_FILE_BYTES / 1024 / 1024
        )));
    }
    decode_bytes_within(&bytes, decoder, &BUDGET).map_err(|e| match e {
        ImageError::Format(detail) => ImageError::Read {
            path: path.display().to_string(),
            detail,
        },
        other => other,
    })
}

fn decode_picture(
    img: image::DynamicImage,
    decoder: Decoder,
    started: Instant,
    budget: &Budget,
) -> Result<Vec<String>, ImageError> {
    let gray = img.into_luma8();
    let spent = |what: &str| {
        let over = started.elapsed() >= budget.time;
        if over {
            tracing::debug!("picture over its time budget after {what}");
        }
        over
    };
    if gray.width().max(gray.height()) > MAX_SIDE {
        let scale = f64::from(MAX_SIDE) / f64::from(gray.width().max(gray.height()));
        let small = image::imageops::thumbnail(
            &gray,
            ((f64::from(gray.width()) * scale) as u32).max(1),
            ((f64::from(gray.height()) * scale) as u32).max(1),
        );
        drop(gray);
        if spent("scaling") {
            return Err(ImageError::TooSlow(budget.time));
        }
        // The scaled picture alone: searching the full one costs many times more and is what
        // a noise bomb relies on.
        return search(&small, decoder, started, budget);
    }
    search(&gray, decoder, started, budget)
}

/// quircs first; the slower rqrr only while time is left.
fn search(
    img: &GrayImage,
    decoder: Decoder,
    started: Instant,
    budget: &Budget,
) -> Result<Vec<String>, ImageError> {
    let over = || started.elapsed() >= budget.time;
    match decoder {
        Decoder::Rqrr => Ok(with_rqrr(img)),
        Decoder::Quircs => Ok(with_quircs(img)),
        Decoder::QuircsThenRqrr => {
            let found = with_quircs(img);
            if !found.is_empty() {
                return Ok(found);
            }
            if over() {
                return Err(ImageError::TooSlow(budget.time));
            }
            Ok(with_rqrr(img))
        }
    }
}
