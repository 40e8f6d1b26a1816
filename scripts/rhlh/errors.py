"""The one error type every input check raises."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input: names the file, the row (or sample/gene) and the column."""

    def __init__(self, file, message, row=None, column=None, value=None):
        self.file = str(file)
        self.row = row
        self.column = column
        self.value = value
        self.detail = message
        where = [f"file {self.file}"]
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column '{column}'")
        text = "Invalid input: " + ", ".join(where) + f": {message}"
        if value is not None:
            text += f" (found {value!r})"
        super().__init__(text)
