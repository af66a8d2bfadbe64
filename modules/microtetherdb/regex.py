# An iterative matcher for the `$regex` query operator (search -> bool).
#
# MicroPython's `re` (re1.5) matches by recursive backtracking: one level of C
# recursion per character a loop consumes, and an unanchored search starts
# with such a loop. On a string of a few hundred to a thousand characters it
# stops with RuntimeError("maximum recursion depth exceeded"). The query
# engine calls re first and, only when that happens, this module: the same
# pattern compiled the way re1.5 compiles it (same syntax, same byte-wise
# semantics: `.` and classes match one UTF-8 byte, `^`/`$` only at the ends
# of the string) and run as a Thompson NFA over the bytes, one position at a
# time: no recursion, time O(len(pattern) x len(string)), memory
# O(len(pattern)). Only whether the pattern occurs is computed (no groups).
# Imported on first use.

_CHAR = 1
_ANY = 2
_CLASS = 3
_CLASSNOT = 4
_NAMED = 5
_BOL = 0x50
_EOL = 0x51
_JMP = 0x60
_SPLIT = 0x61
_RSPLIT = 0x62
_SAVE = 0x7E
_MATCH = 0x7F
_NAMED_IN_CLASS = 0  # marks a named class (\d, \w, \s, ...) inside [...]


def _named_char(c):
    # d D w W s S (re1.5: MATCH_NAMED_CLASS_CHAR)
    return (c | 0x20) == 0x64 or (c | 0x24) == 0x77


def _compile(p, i, code):
    # Port of re1.5's _compilecode: appends to `code` (a list of ints, the
    # same byte program with relative jumps) -> index of the ')' or the end.
    n = len(p)
    start = len(code)
    term = start
    alt = -1
    while i < n and p[i] != 0x29:  # ')'
        c = p[i]
        if c == 0x5C:  # backslash
            i += 1
            if i >= n:
                raise ValueError("trailing backslash")
            c = p[i]
            term = len(code)
            if _named_char(c):
                code.append(_NAMED)
            else:
                code.append(_CHAR)
            code.append(c)
        elif c == 0x2E:  # .
            term = len(code)
            code.append(_ANY)
        elif c == 0x5B:  # [
            term = len(code)
            i += 1
            if i < n and p[i] == 0x5E:  # ^
                code.append(_CLASSNOT)
                i += 1
            else:
                code.append(_CLASS)
            cnt_at = len(code)
            code.append(0)
            cnt = 0
            while True:
                if i >= n:
                    raise ValueError("unterminated character class")
                c = p[i]
                if c == 0x5D:  # ]
                    break
                if c == 0x5C:
                    i += 1
                    if i >= n:
                        raise ValueError("unterminated character class")
                    c = p[i]
                    if _named_char(c):
                        code.append(_NAMED_IN_CLASS)
                        code.append(c)
                        cnt += 1
                        i += 1
                        continue
                hi = c
                if i + 2 < n and p[i + 1] == 0x2D and p[i + 2] != 0x5D:  # a-z
                    i += 2
                    hi = p[i]
                code.append(c)
                code.append(hi)
                cnt += 1
                i += 1
            code[cnt_at] = cnt
        elif c == 0x28:  # (
            term = len(code)
            cap = not (i + 2 < n and p[i + 1] == 0x3F and p[i + 2] == 0x3A)  # (?:
            if cap:
                code.append(_SAVE)
                code.append(0)
            else:
                i += 2
            i = _compile(p, i + 1, code)
            if i >= n:
                raise ValueError("missing )")
            if cap:
                code.append(_SAVE)
                code.append(0)
        elif c == 0x3F or c == 0x2A:  # ? *
            if len(code) == term:
                raise ValueError("nothing to repeat")
            code[term:term] = [_SPLIT, 0]
            if c == 0x2A:
                code.append(_JMP)
                code.append(term - len(code) - 1)
            if i + 1 < n and p[i + 1] == 0x3F:  # lazy: the same language
                code[term] = _RSPLIT
                i += 1
            code[term + 1] = len(code) - term - 2
            term = len(code)
        elif c == 0x2B:  # +
            if len(code) == term:
                raise ValueError("nothing to repeat")
            op = _RSPLIT
            if i + 1 < n and p[i + 1] == 0x3F:
                op = _SPLIT
                i += 1
            code.append(op)
            code.append(term - len(code) - 1)
            term = len(code)
        elif c == 0x7C:  # |
            if alt >= 0:
                code[alt] = len(code) - alt - 1
            code[start:start] = [_SPLIT, 0]
            code.append(_JMP)
            alt = len(code)
            code.append(0)
            code[start + 1] = len(code) - start - 2
            term = len(code)
        elif c == 0x5E:  # ^
            code.append(_BOL)
            term = len(code)
        elif c == 0x24:  # $
            code.append(_EOL)
            term = len(code)
        else:
            term = len(code)
            code.append(_CHAR)
            code.append(c)
        i += 1
    if alt >= 0:
        code[alt] = len(code) - alt - 1
    return i


def compile(pattern):
    # -> the program (a list of ints); ValueError for what re1.5 refuses.
    p = pattern.encode() if type(pattern) is str else bytes(pattern)
    code = []
    i = _compile(p, 0, code)
    if i < len(p):
        raise ValueError("unbalanced )")
    code.append(_MATCH)
    return code


def _named(k, b):
    lk = k | 0x20
    if lk == 0x64:  # d
        r = 0x30 <= b <= 0x39
    elif lk == 0x73:  # s
        r = b == 0x20 or 9 <= b <= 13
    else:  # w
        r = (0x41 <= b <= 0x5A) or (0x61 <= b <= 0x7A) or (0x30 <= b <= 0x39) or b == 0x5F
    return r if k & 0x20 else not r


def _klass(code, pc, b):
    # code[pc] is Class/ClassNot, code[pc + 1] the number of pairs
    pos = code[pc] == _CLASS
    j = pc + 2
    for _ in range(code[pc + 1]):
        lo = code[j]
        if lo == _NAMED_IN_CLASS:
            if _named(code[j + 1], b):
                return pos
        elif lo <= b <= code[j + 1]:
            return pos
        j += 2
    return not pos


def _add(code, pcs, seen, pc, at_start, at_end):
    # Follow the non-consuming instructions from pc (an explicit stack, no
    # recursion); append the consuming ones (and Match) to pcs.
    stack = [pc]
    while stack:
        pc = stack.pop()
        if seen[pc]:
            continue
        seen[pc] = 1
        op = code[pc]
        if op == _JMP:
            stack.append(pc + 2 + code[pc + 1])
        elif op == _SPLIT or op == _RSPLIT:
            stack.append(pc + 2 + code[pc + 1])
            stack.append(pc + 2)
        elif op == _SAVE:
            stack.append(pc + 2)
        elif op == _BOL:
            if at_start:
                stack.append(pc + 1)
        elif op == _EOL:
            if at_end:
                stack.append(pc + 1)
        else:
            pcs.append(pc)


def search(code, s):
    # True if the program matches somewhere in s (str or bytes).
    b = s.encode() if type(s) is str else s
    n = len(b)
    size = len(code)
    cur = []
    for i in range(n + 1):
        seen = bytearray(size)
        nxt = []
        for pc in cur:
            _add(code, nxt, seen, pc, False, i == n)
        _add(code, nxt, seen, 0, i == 0, i == n)  # a match may start here
        cur = []
        c = b[i] if i < n else -1
        for pc in nxt:
            op = code[pc]
            if op == _MATCH:
                return True
            if c < 0:
                continue
            if op == _CHAR:
                if code[pc + 1] == c:
                    cur.append(pc + 2)
            elif op == _ANY:
                cur.append(pc + 1)
            elif op == _NAMED:
                if _named(code[pc + 1], c):
                    cur.append(pc + 2)
            elif _klass(code, pc, c):
                cur.append(pc + 2 + 2 * code[pc + 1])
    return False
