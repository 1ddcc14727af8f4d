//! base64url without padding, the only encoding Tamaq uses on the wire for binary values.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Strict: rejects padding, the standard alphabet (`+`, `/`) and non-canonical trailing bits.
pub fn decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    URL_SAFE_NO_PAD.decode(text)
}

pub fn decode_into(text: &str, out: &mut [u8]) -> Result<usize, base64::DecodeSliceError> {
    URL_SAFE_NO_PAD.decode_slice(text, out)
}

pub fn encode_into(bytes: &[u8], out: &mut [u8]) -> Result<usize, base64::EncodeSliceError> {
    URL_SAFE_NO_PAD.encode_slice(bytes, out)
}
