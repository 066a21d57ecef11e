"""Entropy coding: int32 symbol arrays <-> self-describing byte streams (numpy + constriction, no torch).

    np.ndarray (int) --encode_symbols--> bytes: mode | count | min | (histogram + ANS words | packed bits)
    bytes --decode_symbols(max_count=...)--> (np.ndarray int32, offset after the stream)

The stream layout is normative and described in bitstream_spec.md, "Coded symbol stream".
"""

from stgvcodec.entropy.symbols import MAX_ALPHABET, SymbolCoding, decode_symbols, encode_symbols, stream_end

__all__ = ["MAX_ALPHABET", "SymbolCoding", "decode_symbols", "encode_symbols", "stream_end"]
