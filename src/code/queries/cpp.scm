; Symbols and includes of C++ and CUDA files.
(function_definition declarator: (function_declarator declarator: (identifier) @name)) @def.function
(function_definition declarator: (function_declarator declarator: (field_identifier) @name)) @def.function
(function_definition declarator: (function_declarator declarator: (qualified_identifier) @name)) @def.function
(function_definition declarator: (pointer_declarator declarator: (function_declarator declarator: (identifier) @name))) @def.function
(function_definition declarator: (reference_declarator (function_declarator declarator: (identifier) @name))) @def.function
(class_specifier name: (type_identifier) @name body: (_)) @def.class
(struct_specifier name: (type_identifier) @name body: (_)) @def.struct
(enum_specifier name: (type_identifier) @name body: (_)) @def.enum
(namespace_definition name: (namespace_identifier) @name) @def.module
(preproc_def name: (identifier) @name) @def.constant
(translation_unit (declaration (type_qualifier) declarator: (init_declarator declarator: (identifier) @name)) @def.constant)
(namespace_definition body: (declaration_list (declaration (type_qualifier) declarator: (init_declarator declarator: (identifier) @name)) @def.constant))
(preproc_include path: (_) @import)
