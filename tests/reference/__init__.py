"""Independent reference implementations used by the test suite.

Written from the file-format description in DESIGN.md section 2 only, without looking at
``hn_core``: the point is that two independent readings of the spec must agree.
"""
