package events

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// DefaultSource is the CloudEvents source attribute when none is configured.
const DefaultSource = "orgs"

// Envelope is one event as published: the CloudEvents 1.0 attributes orgs sets, the seq
// extension, and the data object as raw JSON.
type Envelope struct {
	ID      string
	Source  string
	Type    string
	Subject string
	Time    time.Time
	Seq     int64
	Data    json.RawMessage
}

// Marshal returns the structured-mode CloudEvents JSON of e.
func Marshal(e Envelope) []byte {
	return e.AppendJSON(make([]byte, 0, 256+len(e.Data)))
}

// AppendJSON appends the structured-mode CloudEvents JSON of e to b. It is written by hand
// because the relay encodes every event and reflection-based encoding dominated its CPU
// profile; Data must be valid JSON (it comes from a jsonb column) and is copied verbatim.
func (e Envelope) AppendJSON(b []byte) []byte {
	source := e.Source
	if source == "" {
		source = DefaultSource
	}
	b = append(b, `{"specversion":"1.0","id":`...)
	b = appendString(b, e.ID)
	b = append(b, `,"source":`...)
	b = appendString(b, source)
	b = append(b, `,"type":`...)
	b = appendString(b, e.Type)
	b = append(b, `,"subject":`...)
	b = appendString(b, e.Subject)
	b = append(b, `,"time":"`...)
	b = e.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","datacontenttype":"application/json","seq":`...)
	b = strconv.AppendInt(b, e.Seq, 10)
	b = append(b, `,"data":`...)
	if len(e.Data) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, e.Data...)
	}
	return append(b, '}')
}

const hex = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, as encoding/json
// does, so the output is always valid JSON.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
