; Symbols and imports of Rust files.
; The code stage runs these rules as a tree walk (`walk_rust` in src/ingest/code/extract.rs);
; a test holds the two to each other, so change both together.
(function_item name: (identifier) @name) @def.function
(function_signature_item name: (identifier) @name) @def.function
(struct_item name: (type_identifier) @name) @def.struct
(enum_item name: (type_identifier) @name) @def.enum
(union_item name: (type_identifier) @name) @def.struct
(trait_item name: (type_identifier) @name) @def.trait
(impl_item type: (_) @name) @def.impl
(const_item name: (identifier) @name) @def.constant
(static_item name: (identifier) @name) @def.constant
(mod_item name: (identifier) @name) @def.module
(use_declaration argument: (_) @import)
