//! [`ErrorReply`]: an ERROR packet the server is about to send, with its code and message.

use bytes::Bytes;

use crate::packet::{ErrorCode, Packet};
use crate::store::StoreError;

/// An error to report to the peer: the code it sees and a message for its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    /// The TFTP error code.
    pub code: ErrorCode,
    /// What went wrong, in words.
    pub message: String,
}

impl ErrorReply {
    /// An error reply with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The ERROR packet.
    pub fn to_bytes(&self) -> Bytes {
        Packet::Error {
            code: self.code,
            message: &self.message,
        }
        .to_bytes()
    }
}

impl std::fmt::Display for ErrorReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "error {}: {}", self.code.as_u16(), self.message)
    }
}

impl From<StoreError> for ErrorReply {
    fn from(e: StoreError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}
