//! The container/codec families Traum reads.

/// Container/codec family, sniffed from content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AudioFormat {
    Wav,
    Aiff,
    Flac,
    Mp3,
    Ogg,
    M4a,
}

impl AudioFormat {
    /// Every format, in declaration order.
    pub const ALL: &'static [AudioFormat] = &[
        AudioFormat::Wav,
        AudioFormat::Aiff,
        AudioFormat::Flac,
        AudioFormat::Mp3,
        AudioFormat::Ogg,
        AudioFormat::M4a,
    ];

    /// The stable short name, stored in databases; also the usual file
    /// extension.
    pub fn as_str(self) -> &'static str {
        match self {
            AudioFormat::Wav => "wav",
            AudioFormat::Aiff => "aiff",
            AudioFormat::Flac => "flac",
            AudioFormat::Mp3 => "mp3",
            AudioFormat::Ogg => "ogg",
            AudioFormat::M4a => "m4a",
        }
    }

    /// Parses [`AudioFormat::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|format| format.as_str() == text)
    }

    /// The name people know the format by, for messages.
    pub fn display_name(self) -> &'static str {
        match self {
            AudioFormat::Wav => "WAV",
            AudioFormat::Aiff => "AIFF",
            AudioFormat::Flac => "FLAC",
            AudioFormat::Mp3 => "MP3",
            AudioFormat::Ogg => "Ogg Vorbis",
            AudioFormat::M4a => "M4A",
        }
    }
}

impl std::fmt::Display for AudioFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
