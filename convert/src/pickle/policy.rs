//! Which pickle globals may be called, and what calling them means.
//!
//! The machine never imports or runs anything. A call (REDUCE, INST, OBJ, NEWOBJ) of a global is
//! either *interpreted* (tensor rebuilders, containers: the result is computed from the
//! arguments), *inert* (a known-harmless constructor whose result is kept as an opaque object),
//! or *refused*: every other callable refuses the whole file, because `torch.load` with
//! `weights_only=False` would have executed it.

/// What a call of a global means to the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Callable {
    /// `torch._utils._rebuild_tensor` (storage, offset, size, stride).
    RebuildTensor,
    /// `torch._utils._rebuild_tensor_v2` (storage, offset, size, stride, requires_grad, hooks[, metadata]).
    RebuildTensorV2,
    /// `torch._utils._rebuild_tensor_v3` (…, dtype[, metadata]).
    RebuildTensorV3,
    /// `torch._utils._rebuild_parameter(_with_state)`: the first argument is the data.
    RebuildParameter,
    /// `torch._tensor._rebuild_from_type(_v2)` (func, type, args, state): apply `func` to `args`.
    RebuildFromType,
    /// A tensor rebuilder whose result safetensors cannot hold; the payload names the kind.
    UnsupportedTensor(&'static str),
    /// `collections.OrderedDict` / `collections.defaultdict` / `builtins.dict`.
    Dict,
    /// `builtins.list`.
    List,
    /// `builtins.tuple` / `torch.Size`: returns the (tuple) argument.
    Tuple,
    /// `builtins.set`.
    Set,
    /// `builtins.frozenset`.
    FrozenSet,
    /// `builtins.bytearray` / `builtins.bytes`.
    ByteArray,
    /// `_codecs.encode(str, encoding)`: how protocol 2 stores bytes.
    CodecsEncode,
    /// `torch.device(...)`: kept as its string.
    Device,
    /// `torch.jit._pickle.build_*list` / `restore_type_tag`: returns the first argument.
    Identity,
    /// `copyreg._reconstructor(cls, base, state)`: an inert instance of `cls`.
    Reconstructor,
    /// A harmless constructor kept as an opaque object (numpy arrays and scalars, slices, ...).
    Inert,
    /// Anything else: refuse the file.
    Refused,
}

/// The module a module name stands for when Python imports it: Python 2 names that pickle's
/// `fix_imports` maps (`_compat_pickle.IMPORT_MAPPING`), C accelerator modules and
/// platform modules that are another module under a second name (`posix` is what `os`
/// re-exports, `posixpath` is `os.path`).
pub fn normalize_module(module: &str) -> &str {
    match module {
        "__builtin__" | "exceptions" | "__builtins__" => "builtins",
        "copy_reg" => "copyreg",
        "numpy.core.multiarray" => "numpy._core.multiarray",
        "posix" | "nt" => "os",
        "posixpath" | "ntpath" | "genericpath" | "macpath" => "os.path",
        "_posixsubprocess" | "_subprocess" | "commands" => "subprocess",
        "cPickle" | "_pickle" => "pickle",
        "thread" => "_thread",
        "cStringIO" | "StringIO" | "_io" => "io",
        "_socket" => "socket",
        "urllib2" => "urllib.request",
        "httplib" => "http.client",
        "SocketServer" => "socketserver",
        "_functools" => "functools",
        "_operator" => "operator",
        other => other,
    }
}

/// Python 2 builtins that `fix_imports` maps to another module (`_compat_pickle.NAME_MAPPING`).
fn normalize_name<'a>(module: &'a str, name: &'a str) -> (&'a str, &'a str) {
    match (module, name) {
        ("builtins", "reduce") => ("functools", "reduce"),
        ("builtins", "intern") => ("sys", "intern"),
        ("builtins", "execfile") => ("builtins", "exec"),
        other => other,
    }
}

/// A global resolved the way Python's `find_class` resolves it, with every other object the
/// same symbol could reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The canonical `(module, name)`: aliases normalised, a dotted name (protocol 4 walks it
    /// attribute by attribute) split so that `name` is the last attribute.
    pub canonical: (String, String),
    /// Every `(module, name)` the symbol may stand for: the canonical one, and one per
    /// attribute on the dotted path that may be a module object imported by the module before
    /// it (`argparse` + `_os.system` is `os.system`; `torch.utils.cpp_extension` +
    /// `subprocess.Popen` is `subprocess.Popen`).
    pub candidates: Vec<(String, String)>,
    /// Why the symbol is refused whatever it is used for: the code-running global it reaches.
    pub runs_code: Option<String>,
}

/// A module name an attribute may stand for: the attribute itself, or without the leading
/// underscores modules use to import privately (`import os as _os`).
fn attribute_module(attr: &str) -> String {
    let bare = attr.trim_start_matches('_');
    let aliased = normalize_module(attr);
    if aliased != attr || bare.is_empty() {
        return aliased.to_string();
    }
    if bare != attr && (in_modules(bare, CODE_MODULES) || in_modules(bare, CLASS_DENIED_MODULES)) {
        return normalize_module(bare).to_string();
    }
    attr.to_string()
}

/// Resolves a GLOBAL / STACK_GLOBAL / INST symbol and judges whether naming it is refused.
pub fn resolve(module: &str, name: &str) -> Resolution {
    let parts: Vec<&str> = name.split('.').collect();
    let (last, walk) = parts.split_last().map_or(("", &[][..]), |(l, w)| (*l, w));
    let module = normalize_module(module);
    let mut canon_module = module.to_string();
    for p in walk {
        canon_module.push('.');
        canon_module.push_str(p);
    }
    let (cm, cn) = normalize_name(normalize_module(&canon_module), last);
    let canonical = (cm.to_string(), cn.to_string());
    let mut candidates = vec![canonical.clone()];
    for (j, attr) in parts.iter().enumerate() {
        let m = attribute_module(attr);
        if j + 1 == parts.len() {
            // The last attribute may itself be a module object (`x.os`).
            candidates.push((m, String::new()));
        } else {
            let mut path = m;
            for p in &parts[j + 1..parts.len() - 1] {
                path.push('.');
                path.push_str(p);
            }
            let (pm, pn) = normalize_name(normalize_module(&path), last);
            candidates.push((pm.to_string(), pn.to_string()));
        }
    }
    let dunder = parts.len() > 1
        && parts
            .iter()
            .any(|p| p.len() > 4 && p.starts_with("__") && p.ends_with("__"));
    let runs = if dunder {
        Some(format!(
            "{module}.{name} (a walk through the dunder attribute{} reaches interpreter internals)",
            parts
                .iter()
                .filter(|p| p.len() > 4 && p.starts_with("__") && p.ends_with("__"))
                .map(|p| format!(" `{p}`"))
                .collect::<String>()
        ))
    } else {
        candidates.iter().find_map(|(m, n)| {
            let allowed = !n.is_empty() && classify_call(m, n) != Callable::Refused;
            let denied = if n.is_empty() {
                in_modules(m, CODE_MODULES) || in_modules(m, CLASS_DENIED_MODULES)
            } else {
                runs_code(m, n) || (!allowed && in_modules(m, CLASS_DENIED_MODULES))
            };
            denied.then(|| {
                if n.is_empty() {
                    m.clone()
                } else {
                    format!("{m}.{n}")
                }
            })
        })
    };
    Resolution {
        canonical,
        candidates,
        runs_code: runs,
    }
}

/// Classifies a call of `module.name`.
pub fn classify_call(module: &str, name: &str) -> Callable {
    use Callable::*;
    let module = normalize_module(module);
    match (module, name) {
        ("torch._utils", "_rebuild_tensor") => RebuildTensor,
        ("torch._utils", "_rebuild_tensor_v2") => RebuildTensorV2,
        ("torch._utils", "_rebuild_tensor_v3") => RebuildTensorV3,
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
            RebuildParameter
        }
        ("torch._tensor" | "torch._utils", "_rebuild_from_type" | "_rebuild_from_type_v2") => {
            RebuildFromType
        }
        ("torch._utils", "_rebuild_qtensor") => UnsupportedTensor("a quantized tensor"),
        ("torch._utils", "_rebuild_sparse_tensor" | "_rebuild_sparse_csr_tensor") => {
            UnsupportedTensor("a sparse tensor")
        }
        ("torch._utils", "_rebuild_nested_tensor") => UnsupportedTensor("a nested tensor"),
        ("torch._utils", "_rebuild_meta_tensor_no_storage") => {
            UnsupportedTensor("a meta tensor (it has no data)")
        }
        ("torch._utils", "_rebuild_wrapper_subclass") => {
            UnsupportedTensor("a tensor subclass without storage")
        }
        (
            "torch._utils",
            "_rebuild_device_tensor_from_numpy"
            | "_rebuild_device_tensor_from_cpu_tensor"
            | "_rebuild_xla_tensor"
            | "_rebuild_mtia_tensor"
            | "_rebuild_mps_tensor",
        ) => UnsupportedTensor("a device tensor saved through numpy"),
        ("collections", "OrderedDict" | "defaultdict") | ("builtins", "dict") => Dict,
        ("builtins", "list") => List,
        ("builtins", "tuple") | ("torch", "Size") => Tuple,
        ("builtins", "set") => Set,
        ("builtins", "frozenset") => FrozenSet,
        ("builtins", "bytearray" | "bytes") => ByteArray,
        ("_codecs", "encode") => CodecsEncode,
        ("torch", "device") => Device,
        (
            "torch.jit._pickle",
            "build_intlist" | "build_floatlist" | "build_boollist" | "build_tensorlist"
            | "build_doublelist" | "build_intlist_v2" | "restore_type_tag",
        ) => Identity,
        ("copyreg", "_reconstructor") => Reconstructor,
        ("builtins", "slice" | "complex" | "int" | "float" | "str" | "bool" | "range")
        | ("numpy._core.multiarray" | "numpy.core.multiarray", "_reconstruct" | "scalar")
        | ("numpy", "dtype" | "ndarray")
        | ("torch.serialization", "_get_layout")
        | ("torch._utils", "_rebuild_device_tensor") => Inert,
        _ => Refused,
    }
}

/// Modules whose every global runs code, spawns processes or touches files: naming one at all
/// refuses the file, before any call (so the refusal names the worst global, not an argument).
const CODE_MODULES: &[&str] = &[
    "os",
    "posix",
    "nt",
    "subprocess",
    "shutil",
    "sys",
    "runpy",
    "importlib",
    "pickle",
    "_pickle",
    "marshal",
    "code",
    "codeop",
    "pty",
    "socket",
    "ctypes",
    "webbrowser",
    "multiprocessing",
    "signal",
    "pdb",
    "timeit",
    "torch.hub",
    "dill",
    "cloudpickle",
    "joblib",
];

/// Further modules whose classes may not even be instantiated inertly (NEWOBJ), on top of
/// [`CODE_MODULES`]: they exist to touch the file system, the network or the interpreter.
const CLASS_DENIED_MODULES: &[&str] = &[
    "threading",
    "_thread",
    "bdb",
    "tempfile",
    "io",
    "_io",
    "functools",
    "operator",
    "types",
    "asyncio",
    "http",
    "urllib",
    "ftplib",
    "smtplib",
    "telnetlib",
    "platform",
    "sysconfig",
    "distutils",
    "setuptools",
    "pip",
    "glob",
    "pathlib",
    "torch.serialization",
    "torch.package",
];

/// Whether `module` is one of `list` or inside one of them (`os.path` is inside `os`).
fn in_modules(module: &str, list: &[&str]) -> bool {
    list.iter().any(|m| {
        module == *m || (module.starts_with(m) && module.as_bytes().get(m.len()) == Some(&b'.'))
    })
}

/// Whether a global exists to run code, so that a pickle naming it is refused outright.
pub fn runs_code(module: &str, name: &str) -> bool {
    let module = normalize_module(module);
    in_modules(module, CODE_MODULES)
        || matches!(
            (module, name),
            (
                "builtins",
                "eval"
                    | "exec"
                    | "compile"
                    | "getattr"
                    | "setattr"
                    | "delattr"
                    | "__import__"
                    | "open"
                    | "input"
                    | "breakpoint"
                    | "globals"
                    | "locals"
                    | "vars"
                    | "exit"
                    | "quit"
                    | "help"
            ) | ("torch", "load")
                | ("torch.serialization", "load" | "_load" | "_legacy_load")
                | ("torch.jit", "load")
                | ("torch.storage", "_load_from_bytes")
                | ("numpy", "load")
                | ("operator", "attrgetter" | "methodcaller" | "itemgetter")
                | ("functools", "partial" | "reduce")
        )
}

/// Whether `copyreg._reconstructor(cls, base, state)` may have `base`: `object` (whose
/// `__init__` it skips) or a builtin container or scalar type, as Python's protocol 0/1
/// `__reduce_ex__` writes for subclasses of them.
pub fn reconstructor_base(module: &str, name: &str) -> bool {
    normalize_module(module) == "builtins"
        && matches!(
            name,
            "object"
                | "dict"
                | "list"
                | "set"
                | "frozenset"
                | "tuple"
                | "int"
                | "float"
                | "complex"
                | "str"
                | "bytes"
                | "bytearray"
                | "bool"
        )
}

/// Whether instantiating an object of class `module.name` without calling it is acceptable.
pub fn class_allowed(module: &str, name: &str) -> bool {
    let module = normalize_module(module);
    if module == "builtins" {
        return matches!(
            name,
            "object" | "dict" | "list" | "set" | "frozenset" | "tuple" | "bytearray" | "slice"
        );
    }
    !in_modules(module, CODE_MODULES) && !in_modules(module, CLASS_DENIED_MODULES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_runners_are_refused() {
        for (m, n) in [
            ("os", "system"),
            ("posix", "system"),
            ("nt", "system"),
            ("builtins", "eval"),
            ("__builtin__", "exec"),
            ("builtins", "getattr"),
            ("builtins", "__import__"),
            ("subprocess", "Popen"),
            ("shutil", "rmtree"),
            ("runpy", "run_path"),
            ("importlib", "import_module"),
            ("pickle", "loads"),
            ("torch", "load"),
            ("torch.hub", "load"),
            ("functools", "partial"),
            ("__main__", "MyModel"),
        ] {
            assert_eq!(classify_call(m, n), Callable::Refused, "{m}.{n}");
        }
    }

    #[test]
    fn code_runners_are_refused_by_name() {
        assert!(runs_code("posix", "system"));
        assert!(runs_code("os.path", "join"));
        assert!(runs_code("__builtin__", "eval"));
        assert!(runs_code("torch.serialization", "load"));
        assert!(runs_code("torch.hub", "load"));
        assert!(!runs_code("torch._utils", "_rebuild_tensor_v2"));
        assert!(!runs_code("builtins", "set"));
        assert!(!runs_code("torch.serialization", "_get_layout"));
        assert!(!runs_code("osmnx", "x"));
    }

    #[test]
    fn denied_classes() {
        assert!(!class_allowed("subprocess", "Popen"));
        assert!(!class_allowed("os.path", "x"));
        assert!(!class_allowed("torch.hub", "X"));
        assert!(!class_allowed("__builtin__", "eval"));
        assert!(class_allowed("__main__", "Net"));
        assert!(class_allowed("torch.nn.modules.linear", "Linear"));
        assert!(class_allowed("osmnx", "Graph"));
        assert!(class_allowed("builtins", "object"));
    }

    #[test]
    fn rebuilders_are_interpreted() {
        assert_eq!(
            classify_call("torch._utils", "_rebuild_tensor_v2"),
            Callable::RebuildTensorV2
        );
        assert_eq!(classify_call("collections", "OrderedDict"), Callable::Dict);
        assert_eq!(classify_call("__builtin__", "set"), Callable::Set);
        assert!(matches!(
            classify_call("torch._utils", "_rebuild_qtensor"),
            Callable::UnsupportedTensor(_)
        ));
    }
}
