//! The client's side of option negotiation: what to ask for in a request, and what an OACK
//! from the server may say.
//!
//! A server may grant less than was asked (a smaller `blksize` or `windowsize`) but never
//! more, may only acknowledge options that were asked for, and must echo `timeout` as asked
//! (RFC 2347, 2348, 2349, 7440). An OACK that breaks these rules is refused with ERROR 8.

use std::time::Duration;

use super::{
    DEFAULT_BLOCK_SIZE, Known, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE, TransferParams, parse_decimal,
};
use crate::error::ErrorReply;
use crate::packet::{ErrorCode, TftpOption};

/// The options a client asks for. `None` leaves an option out of the request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestOptions {
    /// `blksize` (RFC 2348): 8..=65464.
    pub block_size: Option<u16>,
    /// `windowsize` (RFC 7440): 1..=65535.
    pub window_size: Option<u16>,
    /// `timeout` in whole seconds (RFC 2349), or `utimeout` for anything finer.
    pub timeout: Option<Duration>,
    /// `tsize` (RFC 2349): ask for the size on a read (the value is ignored and sent as 0);
    /// announce it on a write (filled in from the contents).
    pub transfer_size: bool,
}

impl RequestOptions {
    /// Sets [`block_size`](Self::block_size).
    pub fn with_block_size(mut self, block_size: u16) -> Self {
        self.block_size = Some(block_size.clamp(MIN_BLOCK_SIZE, MAX_BLOCK_SIZE));
        self
    }

    /// Sets [`window_size`](Self::window_size).
    pub fn with_window_size(mut self, window_size: u16) -> Self {
        self.window_size = Some(window_size.max(1));
        self
    }

    /// Sets [`timeout`](Self::timeout).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets [`transfer_size`](Self::transfer_size).
    pub fn with_transfer_size(mut self) -> Self {
        self.transfer_size = true;
        self
    }

    /// The option pairs to put in a request; `size` is the `tsize` value to send (0 on a read).
    pub(crate) fn pairs(&self, size: u64) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        if let Some(block_size) = self.block_size {
            pairs.push((Known::BlockSize.as_str(), block_size.to_string()));
        }
        if let Some(window_size) = self.window_size {
            pairs.push((Known::WindowSize.as_str(), window_size.to_string()));
        }
        match self.timeout {
            Some(t) if t.subsec_nanos() == 0 && (1..=255).contains(&t.as_secs()) => {
                pairs.push((Known::Timeout.as_str(), t.as_secs().to_string()));
            }
            Some(t) => pairs.push((Known::MicroTimeout.as_str(), t.as_micros().to_string())),
            None => {}
        }
        if self.transfer_size {
            pairs.push((Known::TransferSize.as_str(), size.to_string()));
        }
        pairs
    }

    /// The parameters to run with when the server answered with data (or ACK 0) instead of
    /// an OACK: it ignored every option.
    pub(crate) fn declined(&self) -> TransferParams {
        TransferParams {
            block_size: DEFAULT_BLOCK_SIZE,
            window_size: 1,
            retry_timeout: None,
            announced_size: None,
        }
    }

    /// Checks the server's OACK against what was asked and returns the parameters to run
    /// with (`announced_size` is the server's `tsize`, if it sent one).
    pub(crate) fn accept(&self, oack: &[TftpOption<'_>]) -> Result<TransferParams, ErrorReply> {
        let mut params = self.declined();
        for option in oack {
            let refuse = |why: &str| {
                ErrorReply::new(
                    ErrorCode::OptionRefused,
                    format!("option {} {}: {why}", option.name, option.value),
                )
            };
            let value = parse_decimal(option.value).ok_or_else(|| refuse("not a number"))?;
            match Known::from_name(option.name) {
                Some(Known::BlockSize) => {
                    let asked = self.block_size.ok_or_else(|| refuse("not asked for"))?;
                    if !(u64::from(MIN_BLOCK_SIZE)..=u64::from(asked)).contains(&value) {
                        return Err(refuse("out of range"));
                    }
                    params.block_size = value as u16;
                }
                Some(Known::WindowSize) => {
                    let asked = self.window_size.ok_or_else(|| refuse("not asked for"))?;
                    if !(1..=u64::from(asked)).contains(&value) {
                        return Err(refuse("out of range"));
                    }
                    params.window_size = value as u16;
                }
                Some(Known::Timeout) => {
                    let asked = self.timeout.ok_or_else(|| refuse("not asked for"))?;
                    if Duration::from_secs(value) != asked {
                        return Err(refuse("not the value asked for"));
                    }
                    params.retry_timeout = Some(asked);
                }
                Some(Known::MicroTimeout) => {
                    let asked = self.timeout.ok_or_else(|| refuse("not asked for"))?;
                    if Duration::from_micros(value) != asked {
                        return Err(refuse("not the value asked for"));
                    }
                    params.retry_timeout = Some(asked);
                }
                Some(Known::TransferSize) if self.transfer_size => {
                    params.announced_size = Some(value);
                }
                _ => return Err(refuse("not asked for")),
            }
        }
        Ok(params)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn oack<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<TftpOption<'a>> {
        pairs
            .iter()
            .map(|&(name, value)| TftpOption { name, value })
            .collect()
    }

    #[test]
    fn asked_options_are_written_in_a_fixed_order() {
        let asked = RequestOptions::default()
            .with_block_size(1468)
            .with_window_size(16)
            .with_timeout(Duration::from_secs(2))
            .with_transfer_size();
        let pairs: Vec<(&str, String)> = asked.pairs(0);
        assert_eq!(
            pairs,
            vec![
                ("blksize", "1468".to_owned()),
                ("windowsize", "16".to_owned()),
                ("timeout", "2".to_owned()),
                ("tsize", "0".to_owned()),
            ]
        );
    }

    #[test]
    fn a_sub_second_timeout_is_asked_as_utimeout() {
        let asked = RequestOptions::default().with_timeout(Duration::from_millis(50));
        assert_eq!(asked.pairs(0), vec![("utimeout", "50000".to_owned())]);
    }

    #[test]
    fn a_server_may_grant_less_than_asked() {
        let asked = RequestOptions::default()
            .with_block_size(65_464)
            .with_window_size(64);
        let params = asked
            .accept(&oack(&[("BLKSIZE", "1428"), ("windowsize", "8")]))
            .unwrap();
        assert_eq!((params.block_size, params.window_size), (1428, 8));
    }

    #[test]
    fn a_server_may_not_grant_more_or_what_was_not_asked() {
        let asked = RequestOptions::default().with_block_size(1024);
        assert!(asked.accept(&oack(&[("blksize", "2048")])).is_err());
        assert!(asked.accept(&oack(&[("windowsize", "4")])).is_err());
        assert!(asked.accept(&oack(&[("blksize", "x")])).is_err());
        let refused = asked.accept(&oack(&[("tsize", "5")])).unwrap_err();
        assert_eq!(refused.code, ErrorCode::OptionRefused);
    }

    #[test]
    fn the_servers_tsize_is_taken_as_the_announced_size() {
        let asked = RequestOptions::default().with_transfer_size();
        let params = asked.accept(&oack(&[("tsize", "12345")])).unwrap();
        assert_eq!(params.announced_size, Some(12_345));
    }
}
