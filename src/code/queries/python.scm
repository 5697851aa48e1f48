; Symbols and imports of Python files.
; Captures: @def.<kind> on the definition node, @name on its name, @import on an imported module;
; @import.from and @import.name on `from X import Y`, recorded as `from X import Y` (Y may be a
; module of package X).
(class_definition name: (identifier) @name) @def.class
(function_definition name: (identifier) @name) @def.function
(module (expression_statement (assignment left: (identifier) @name) @def.constant))
(import_statement name: (dotted_name) @import)
(import_statement name: (aliased_import name: (dotted_name) @import))
(import_from_statement module_name: (dotted_name) @import)
(import_from_statement module_name: (relative_import) @import)
(import_from_statement module_name: (dotted_name) @import.from name: (dotted_name) @import.name)
(import_from_statement module_name: (relative_import) @import.from name: (dotted_name) @import.name)
(import_from_statement module_name: (dotted_name) @import.from name: (aliased_import name: (dotted_name) @import.name))
(import_from_statement module_name: (relative_import) @import.from name: (aliased_import name: (dotted_name) @import.name))
