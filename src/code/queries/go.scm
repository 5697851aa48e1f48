; Symbols and imports of Go files.
(function_declaration name: (identifier) @name) @def.function
(method_declaration name: (field_identifier) @name) @def.method
(type_declaration (type_spec name: (type_identifier) @name type: (struct_type)) @def.struct)
(type_declaration (type_spec name: (type_identifier) @name type: (interface_type)) @def.trait)
(const_declaration (const_spec name: (identifier) @name) @def.constant)
(import_spec path: (_) @import)
