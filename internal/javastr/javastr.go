// Package javastr reproduces the two Java String semantics the DDMQ wire
// contract depends on: String.hashCode and String.length (UTF-16 code units).
package javastr

import "unicode/utf16"

// HashCode returns Java's String.hashCode of s: h = 31*h + c over the UTF-16
// code units of s, in wrapping 32-bit arithmetic. Invalid UTF-8 bytes count
// as U+FFFD, as Java's decoder would make them.
func HashCode(s string) int32 {
	var h int32
	for _, r := range s {
		if r >= 0x10000 {
			r1, r2 := utf16.EncodeRune(r)
			h = 31*h + int32(r1)
			h = 31*h + int32(r2)
			continue
		}
		h = 31*h + int32(r)
	}
	return h
}

// Len returns the length of s in UTF-16 code units (Java's String.length).
func Len(s string) int {
	n := 0
	for _, r := range s {
		if r >= 0x10000 {
			n += 2
		} else {
			n++
		}
	}
	return n
}
