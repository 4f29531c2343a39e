"""The codec's single error type."""


class DecodeError(ValueError):
    """A frame too short for a field, or whose length fields claim more than is there.

    ``field`` names the field that could not be read, ``offset`` is its
    offset in the frame (counting from the destination MAC).
    """

    def __init__(self, field: str, offset: int, message: str):
        self.field = field
        self.offset = offset
        self.detail = message
        super().__init__(f"{field} at offset {offset}: {message}")


def truncated(fields: list[tuple[int, str]], length: int, part: str, needed: int) -> DecodeError:
    """The error for a frame of ``length`` bytes that ends inside ``part``.

    ``fields`` lists (offset, name) in frame order; the error names the
    first field the frame does not hold completely.
    """
    name, offset = fields[0][1], fields[0][0]
    for off, field in fields:
        if off > length:
            break
        name, offset = field, off
    return DecodeError(name, offset, f"frame of {length} bytes ends inside the {part} (needs {needed})")
