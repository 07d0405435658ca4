"""An image file cut down to what its decoder reads, byte for byte: no re-encoding, no loss.

Each format is a sequence of tagged parts (JPEG segments, PNG chunks, GIF blocks, WebP chunks).
What makes the picture is kept as it came (the compressed pixels, their tables and palettes,
transparency, animation timing and loops, the colour profile); what the decoder skips is dropped:
metadata (EXIF, XMP, IPTC, comments, text), any application's own segments and chunks, and
whatever follows the image's end. Pillow reads these formats but writes them only by encoding
the pixels again (lossy for JPEG and WebP), so this is done here, on files Pillow has already
decoded whole: `keep_decoded` raises ValueError only on a structure it does not follow.
"""

import struct

JPEG_EOI, JPEG_SOS, JPEG_COM = 0xD9, 0xDA, 0xFE
# APPn segments a decoder uses, by marker and the identifier they start with: JFIF (pixel density),
# ICC_PROFILE (the colours), Adobe (the colour transform of 3 and 4 channel images).
JPEG_APPS = {0xE0: (b"JFIF\0",), 0xE2: (b"ICC_PROFILE\0",), 0xEE: (b"Adobe",)}
# Markers without a length: TEM and the restart markers.
JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8)}

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The critical chunks, what changes how pixels look (transparency, gamma, colour space and profile,
# significant bits, pixel size, background), and APNG's animation chunks.
PNG_CHUNKS = {
    b"IHDR", b"PLTE", b"IDAT", b"IEND",
    b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"cICP", b"sBIT", b"pHYs", b"bKGD",
    b"acTL", b"fcTL", b"fdAT",
}  # fmt: skip

GIF_TRAILER, GIF_EXTENSION, GIF_IMAGE = 0x3B, 0x21, 0x2C
GIF_GRAPHIC_CONTROL, GIF_PLAIN_TEXT, GIF_APPLICATION = 0xF9, 0x01, 0xFF
GIF_LOOPING = (b"NETSCAPE2.0", b"ANIMEXTS1.0")  # the application blocks that say how often to loop

WEBP_CHUNKS = {b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ANIM", b"ANMF", b"ICCP"}
WEBP_METADATA_FLAGS = 0x08 | 0x04  # VP8X: "has EXIF", "has XMP"


def keep_decoded(fmt, data):
    """`data` (a file of Pillow format `fmt`) without what its decoder does not read."""
    return KEEPERS[fmt](data)


def _jpeg(data):
    """Segments up to the first EOI; an MPO's further pictures follow it, and are dropped too."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("no JPEG start of image")
    kept, position = [b"\xff\xd8"], 2
    while True:
        if data[position] != 0xFF:
            raise ValueError("JPEG segment expected")
        while data[position] == 0xFF:  # fill bytes may precede a marker
            position += 1
        marker = data[position]
        position += 1
        if marker == JPEG_EOI:
            kept.append(b"\xff\xd9")
            return b"".join(kept)
        if marker in JPEG_STANDALONE:
            kept.append(bytes((0xFF, marker)))
            continue
        (length,) = struct.unpack_from(">H", data, position)
        segment = data[position : position + length]
        if _jpeg_decoder_reads(marker, segment[2:]):
            kept += (bytes((0xFF, marker)), segment)
        position += length
        if marker == JPEG_SOS:  # the entropy-coded scan runs to the next marker that is not RSTn
            start, position = position, _end_of_scan(data, position)
            kept.append(data[start:position])


def _jpeg_decoder_reads(marker, payload):
    if 0xE0 <= marker <= 0xEF:
        return payload.startswith(JPEG_APPS.get(marker, ()))
    return marker != JPEG_COM


def _end_of_scan(data, position):
    while True:
        position = data.index(b"\xff", position)
        following = data[position + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7:  # a stuffed 0xFF, or a restart marker
            position += 2
        elif following == 0xFF:  # fill bytes before the next marker
            position += 1
        else:
            return position


def _png(data):
    """Chunks up to IEND, without text, time, EXIF and private chunks."""
    if data[:8] != PNG_SIGNATURE:
        raise ValueError("no PNG signature")
    kept, position = [PNG_SIGNATURE], 8
    while True:
        length, kind = struct.unpack_from(">I4s", data, position)
        end = position + 12 + length  # length, type, data, CRC
        if end > len(data):
            raise ValueError("PNG chunk past the end")
        if kind in PNG_CHUNKS:
            kept.append(data[position:end])
        position = end
        if kind == b"IEND":
            return b"".join(kept)


def _gif(data):
    """Header, screen, palette and every frame up to the trailer; of the extensions only graphic
    control (delays, disposal, transparency), plain text and the looping block."""
    flags = data[10]
    position = 13 + (3 << ((flags & 0x07) + 1) if flags & 0x80 else 0)
    kept = [data[:position]]
    while True:
        introducer = data[position]
        if introducer == GIF_TRAILER:
            kept.append(b"\x3b")
            return b"".join(kept)
        if introducer == GIF_EXTENSION:
            label = data[position + 1]
            end = _end_of_sub_blocks(data, position + 2)
            application = data[position + 3 : position + 14]
            if label in (GIF_GRAPHIC_CONTROL, GIF_PLAIN_TEXT) or (
                label == GIF_APPLICATION and application in GIF_LOOPING
            ):
                kept.append(data[position:end])
        elif introducer == GIF_IMAGE:
            flags = data[position + 9]
            table = 3 << ((flags & 0x07) + 1) if flags & 0x80 else 0
            end = _end_of_sub_blocks(data, position + 10 + table + 1)  # descriptor, palette, LZW code size
            kept.append(data[position:end])
        else:
            raise ValueError("GIF block expected")
        position = end


def _end_of_sub_blocks(data, position):
    """Where a run of GIF sub-blocks (each a length byte and that many bytes, ended by 0) ends."""
    while data[position]:
        position += 1 + data[position]
    return position + 1


def _webp(data):
    """The RIFF chunks that make the picture, in a RIFF of their size, with VP8X no longer
    announcing the EXIF and XMP it lost; what follows the RIFF's declared size is dropped."""
    riff, size, webp = struct.unpack_from("<4sI4s", data, 0)
    if riff != b"RIFF" or webp != b"WEBP" or 8 + size > len(data):
        raise ValueError("not a whole WebP RIFF")
    kept, position, end = [], 12, 8 + size
    while position < end:
        kind, length = struct.unpack_from("<4sI", data, position)
        chunk_end = position + 8 + length + (length & 1)  # chunks are padded to an even size
        if chunk_end > end:
            raise ValueError("WebP chunk past the end")
        if kind == b"VP8X":
            chunk = bytearray(data[position:chunk_end])
            chunk[8] &= ~WEBP_METADATA_FLAGS & 0xFF
            kept.append(bytes(chunk))
        elif kind in WEBP_CHUNKS:
            kept.append(data[position:chunk_end])
        position = chunk_end
    body = b"".join(kept)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


KEEPERS = {"JPEG": _jpeg, "MPO": _jpeg, "PNG": _png, "GIF": _gif, "WEBP": _webp}
