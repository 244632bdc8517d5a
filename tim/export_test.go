package tim

// DecodeMessage exposes the message decoder to the external tests.
var DecodeMessage = decodeMessage
