package tim

// DecodeMessage exposes the message decoder to the external tests.
var DecodeMessage = decodeMessage

// DecodeMemberEvent exposes the member event decoder to the external tests.
var DecodeMemberEvent = decodeMemberEvent
