# Cython declarations for compiling _codec.py into _codec_c (setup.py): C types for the
# parser's state and the hot loop's offsets. The .py file stays plain Python; the
# interpreter never reads this file.
import cython


cdef class Frame:
    cdef public object command
    cdef public object headers
    cdef public object body


cdef class FrameParser:
    cdef bytearray _buf
    cdef object _cmd_bytes
    cdef object _commands
    cdef object _error
    cdef Py_ssize_t _hdr_lines
    cdef Py_ssize_t _hdr_scan
    cdef Py_ssize_t _max_block
    cdef Py_ssize_t _max_cmd
    cdef Py_ssize_t _max_frame_size
    cdef Py_ssize_t _max_head
    cdef Py_ssize_t _max_header_length
    cdef Py_ssize_t _max_headers
    cdef object _pending
    cdef bint _strict
    cdef object _unescape
    cdef object _version

    @cython.locals(
        n=Py_ssize_t,
        pos=Py_ssize_t,
        max_size=Py_ssize_t,
        max_headers=Py_ssize_t,
        max_line=Py_ssize_t,
        header_end=Py_ssize_t,
        body_start=Py_ssize_t,
        length=Py_ssize_t,
        end=Py_ssize_t,
        body_scan=Py_ssize_t,
        frames_end=Py_ssize_t,
        nul=Py_ssize_t,
        scan=Py_ssize_t,
    )
    cdef Py_ssize_t _parse(self, bytearray buf, list frames) except -1
