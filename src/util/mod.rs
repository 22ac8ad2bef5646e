//! Small syntaxes shared by every layer.
