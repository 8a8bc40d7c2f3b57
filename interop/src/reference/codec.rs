//! A minimal TLS presentation-language codec (RFC 9420 §2.1) for the structures
//! the verifiers rebuild themselves: a [`Writer`] and a bounds-checked [`Reader`].
//!
//! Vectors use the MLS variable-length integer header (§2.1.2): the top two bits
//! of the first byte give the header size (1, 2 or 4 bytes); `0b11` is invalid,
//! and a length must use the shortest header.

use crate::Error;

/// Appends TLS-encoded values to a byte buffer.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a `uint8`.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// Appends a big-endian `uint16`.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a big-endian `uint32`.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a big-endian `uint64`.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends raw bytes with no header (already encoded structures).
    pub fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }

    /// Appends `opaque v<V>`: a variable-length header, then the bytes.
    pub fn vl(&mut self, v: &[u8]) -> &mut Self {
        self.varint(v.len());
        self.buf.extend_from_slice(v);
        self
    }

    /// Appends a variable-length integer header for `len` (shortest form).
    ///
    /// Lengths of 2^30 or more cannot be encoded; no structure built here comes
    /// anywhere near that, so such a length is a programming error.
    pub fn varint(&mut self, len: usize) -> &mut Self {
        if len < 0x40 {
            self.buf.push(len as u8);
        } else if len < 0x4000 {
            self.buf.extend_from_slice(&((len as u16) | 0x4000).to_be_bytes());
        } else {
            assert!(len < 0x4000_0000, "vector too long for an MLS varint");
            self.buf.extend_from_slice(&((len as u32) | 0x8000_0000).to_be_bytes());
        }
        self
    }

    /// Appends `optional<T>`: absent is `0`, present is `1` then the encoding.
    pub fn optional(&mut self, v: Option<&[u8]>) -> &mut Self {
        match v {
            None => self.u8(0),
            Some(bytes) => self.u8(1).raw(bytes),
        }
    }

    /// The bytes written so far.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

/// Encodes `opaque v<V>` on its own.
pub fn vl(v: &[u8]) -> Vec<u8> {
    Writer::new().vl(v).finish()
}

/// Reads TLS-encoded values from a slice, never past its end.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Whether every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.pos == self.data.len()
    }

    /// The bytes from `start` to the current position.
    pub fn since(&self, start: usize) -> &'a [u8] {
        &self.data[start..self.pos]
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self, what: &str) -> Result<(), Error> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(Error::decode(format!("{what}: {} trailing bytes", self.data.len() - self.pos)))
        }
    }

    /// Takes `n` raw bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.data.len())
            .ok_or_else(|| Error::decode(format!("need {n} bytes at offset {}", self.pos)))?;
        let out = &self.data[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// Reads a `uint8`.
    pub fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.bytes(1)?[0])
    }

    /// Reads a big-endian `uint16`.
    pub fn u16(&mut self) -> Result<u16, Error> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Reads a big-endian `uint32`.
    pub fn u32(&mut self) -> Result<u32, Error> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a big-endian `uint64`.
    pub fn u64(&mut self) -> Result<u64, Error> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// Reads a variable-length integer header (RFC 9420 §2.1.2), rejecting the
    /// reserved `0b11` prefix and non-minimal encodings.
    pub fn varint(&mut self) -> Result<usize, Error> {
        let first = self.u8()?;
        let (len, min) = match first >> 6 {
            0 => return Ok(usize::from(first & 0x3f)),
            1 => ((usize::from(first & 0x3f) << 8) | usize::from(self.u8()?), 0x40),
            2 => {
                let rest = self.bytes(3)?;
                (
                    (usize::from(first & 0x3f) << 24)
                        | (usize::from(rest[0]) << 16)
                        | (usize::from(rest[1]) << 8)
                        | usize::from(rest[2]),
                    0x4000,
                )
            }
            _ => return Err(Error::decode("varint with reserved 0b11 prefix")),
        };
        if len < min {
            return Err(Error::decode(format!("non-minimal varint for {len}")));
        }
        Ok(len)
    }

    /// Reads `opaque v<V>`.
    pub fn vl(&mut self) -> Result<&'a [u8], Error> {
        let n = self.varint()?;
        self.bytes(n)
    }

    /// Reads `T v<V>`, decoding each element with `f` until the vector's
    /// bytes are used up.
    pub fn vl_list<T>(&mut self, mut f: impl FnMut(&mut Reader<'a>) -> Result<T, Error>) -> Result<Vec<T>, Error> {
        let body = self.vl()?;
        let mut inner = Reader::new(body);
        let mut out = Vec::new();
        while !inner.is_empty() {
            out.push(f(&mut inner)?);
        }
        Ok(out)
    }

    /// Reads `optional<T>` with `f`.
    pub fn optional<T>(&mut self, f: impl FnOnce(&mut Reader<'a>) -> Result<T, Error>) -> Result<Option<T>, Error> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(f(self)?)),
            other => Err(Error::decode(format!("optional presence byte {other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trip() {
        for len in [0usize, 1, 63, 64, 255, 16383, 16384, 1 << 20] {
            let enc = Writer::new().varint(len).finish();
            assert_eq!(Reader::new(&enc).varint().unwrap(), len);
        }
        assert!(Reader::new(&[0x40, 0x01]).varint().is_err());
        assert!(Reader::new(&[0xc0, 0, 0, 0, 0, 0, 0, 1]).varint().is_err());
    }
}
