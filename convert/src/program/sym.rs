//! Symbolic sizes of `torch.export` programs: the sympy `srepr` strings of `as_expr`
//! (`Mul(Integer(12), Symbol('s43', positive=True, integer=True))`, `FloorDiv(...)`,
//! `Mod(...)`) and the plain infix strings of older exports (`s0`, `2*s0 + 1`), parsed into
//! an [`Expr`] that is evaluated on integers. Nothing is imported or executed.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

/// An integer expression over size symbols.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A literal.
    Int(i64),
    /// A size symbol (`s0`, `s43`, `u0`).
    Sym(String),
    /// The sum of the terms.
    Add(Vec<Expr>),
    /// The product of the factors.
    Mul(Vec<Expr>),
    /// Floor division (`FloorDiv`, `//`).
    FloorDiv(Box<Expr>, Box<Expr>),
    /// Python modulo (`Mod`, `PythonMod`, `%`): the sign of the divisor.
    Mod(Box<Expr>, Box<Expr>),
    /// Integer power with a non-negative exponent.
    Pow(Box<Expr>, Box<Expr>),
    /// The largest argument.
    Max(Vec<Expr>),
    /// The smallest argument.
    Min(Vec<Expr>),
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, v: &[Expr], sep: &str| -> fmt::Result {
            for (i, e) in v.iter().enumerate() {
                if i > 0 {
                    f.write_str(sep)?;
                }
                write!(f, "{e}")?;
            }
            Ok(())
        };
        match self {
            Expr::Int(v) => write!(f, "{v}"),
            Expr::Sym(s) => f.write_str(s),
            Expr::Add(v) => {
                f.write_str("(")?;
                join(f, v, " + ")?;
                f.write_str(")")
            }
            Expr::Mul(v) => join(f, v, "*"),
            Expr::FloorDiv(a, b) => write!(f, "({a} // {b})"),
            Expr::Mod(a, b) => write!(f, "({a} % {b})"),
            Expr::Pow(a, b) => write!(f, "{a}**{b}"),
            Expr::Max(v) => {
                f.write_str("max(")?;
                join(f, v, ", ")?;
                f.write_str(")")
            }
            Expr::Min(v) => {
                f.write_str("min(")?;
                join(f, v, ", ")?;
                f.write_str(")")
            }
        }
    }
}

impl Expr {
    /// Parses an `expr_str`: a sympy `srepr` (`Symbol('s0', ...)`, `Add(...)`) or an infix
    /// expression (`s0`, `2*s0 + 1`, `(s0//2)`).
    pub fn parse(text: &str) -> Result<Expr, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let e = p.infix()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!(
                "unexpected {:?} at offset {} of the size expression {text:?}",
                char::from(p.s[p.i]),
                p.i
            ));
        }
        Ok(e)
    }

    /// The symbols the expression uses.
    pub fn symbols(&self, out: &mut BTreeSet<String>) {
        match self {
            Expr::Int(_) => {}
            Expr::Sym(s) => {
                out.insert(s.clone());
            }
            Expr::Add(v) | Expr::Mul(v) | Expr::Max(v) | Expr::Min(v) => {
                v.iter().for_each(|e| e.symbols(out))
            }
            Expr::FloorDiv(a, b) | Expr::Mod(a, b) | Expr::Pow(a, b) => {
                a.symbols(out);
                b.symbols(out);
            }
        }
    }

    /// Evaluates with the given symbol values; `None` when a symbol is unbound, a division is
    /// by zero or the arithmetic overflows.
    pub fn eval(&self, env: &HashMap<String, i64>) -> Option<i64> {
        Some(match self {
            Expr::Int(v) => *v,
            Expr::Sym(s) => *env.get(s)?,
            Expr::Add(v) => v
                .iter()
                .try_fold(0i64, |acc, e| acc.checked_add(e.eval(env)?))?,
            Expr::Mul(v) => v
                .iter()
                .try_fold(1i64, |acc, e| acc.checked_mul(e.eval(env)?))?,
            Expr::FloorDiv(a, b) => {
                let (a, b) = (a.eval(env)?, b.eval(env)?);
                if b == 0 {
                    return None;
                }
                a.div_euclid(b) - i64::from(b < 0 && a.rem_euclid(b) != 0)
            }
            Expr::Mod(a, b) => {
                let (a, b) = (a.eval(env)?, b.eval(env)?);
                if b == 0 {
                    return None;
                }
                let r = a.checked_rem(b)?;
                if r != 0 && ((r < 0) != (b < 0)) {
                    r + b
                } else {
                    r
                }
            }
            Expr::Pow(a, b) => {
                let (a, b) = (a.eval(env)?, b.eval(env)?);
                a.checked_pow(u32::try_from(b).ok()?)?
            }
            Expr::Max(v) => v
                .iter()
                .map(|e| e.eval(env))
                .collect::<Option<Vec<_>>>()?
                .into_iter()
                .max()?,
            Expr::Min(v) => v
                .iter()
                .map(|e| e.eval(env))
                .collect::<Option<Vec<_>>>()?
                .into_iter()
                .min()?,
        })
    }

    /// When the expression is `a*s + b` in one unbound symbol `s` (a ≠ 0), the value of `s`
    /// that makes it equal `target` (`None` when it is not of that form or not divisible).
    pub fn solve(&self, target: i64, env: &HashMap<String, i64>) -> Option<(String, i64)> {
        let mut unbound = BTreeSet::new();
        self.symbols(&mut unbound);
        unbound.retain(|s| !env.contains_key(s));
        let sym = match unbound.len() {
            1 => unbound.into_iter().next()?,
            _ => return None,
        };
        // Linear in `sym`: f(0) = b, f(1) = a + b; check f(2) agrees before trusting it.
        let at = |v: i64| {
            let mut e = env.clone();
            e.insert(sym.clone(), v);
            self.eval(&e)
        };
        let (f0, f1, f2) = (at(0)?, at(1)?, at(2)?);
        let a = f1 - f0;
        if a == 0 || f2 - f1 != a || (target - f0) % a != 0 {
            return None;
        }
        let v = (target - f0) / a;
        (at(v)? == target).then_some((sym, v))
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn eat(&mut self, t: &str) -> bool {
        self.ws();
        if self.s[self.i..].starts_with(t.as_bytes()) {
            self.i += t.len();
            true
        } else {
            false
        }
    }

    fn err(&self, what: &str) -> String {
        format!(
            "{what} at offset {} of the size expression {:?}",
            self.i,
            String::from_utf8_lossy(self.s)
        )
    }

    /// `term (('+' | '-') term)*`
    fn infix(&mut self) -> Result<Expr, String> {
        let mut terms = vec![self.term()?];
        loop {
            if self.eat("+") {
                terms.push(self.term()?);
            } else if self.eat("-") {
                let t = self.term()?;
                terms.push(Expr::Mul(vec![Expr::Int(-1), t]));
            } else {
                break;
            }
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::Add(terms)
        })
    }

    /// `factor (('*' | '//' | '%') factor)*`
    fn term(&mut self) -> Result<Expr, String> {
        let mut e = self.power()?;
        loop {
            if self.eat("//") {
                let r = self.power()?;
                e = Expr::FloorDiv(Box::new(e), Box::new(r));
            } else if self.eat("%") {
                let r = self.power()?;
                e = Expr::Mod(Box::new(e), Box::new(r));
            } else if self.s[self.i..].starts_with(b"**") {
                break;
            } else if self.eat("*") {
                let r = self.power()?;
                e = match e {
                    Expr::Mul(mut v) => {
                        v.push(r);
                        Expr::Mul(v)
                    }
                    other => Expr::Mul(vec![other, r]),
                };
            } else {
                break;
            }
        }
        Ok(e)
    }

    fn power(&mut self) -> Result<Expr, String> {
        let base = self.atom()?;
        if self.eat("**") {
            let exp = self.atom()?;
            return Ok(Expr::Pow(Box::new(base), Box::new(exp)));
        }
        Ok(base)
    }

    fn atom(&mut self) -> Result<Expr, String> {
        self.ws();
        if self.eat("(") {
            let e = self.infix()?;
            if !self.eat(")") {
                return Err(self.err("missing `)`"));
            }
            return Ok(e);
        }
        if self.eat("-") {
            let e = self.atom()?;
            return Ok(Expr::Mul(vec![Expr::Int(-1), e]));
        }
        let start = self.i;
        if self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
            while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
                self.i += 1;
            }
            let text = std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
            return text
                .parse()
                .map(Expr::Int)
                .map_err(|_| self.err("integer out of range"));
        }
        while self
            .s
            .get(self.i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        {
            self.i += 1;
        }
        if start == self.i {
            return Err(self.err("expected a number, a symbol or a call"));
        }
        let name = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
        if !self.eat("(") {
            return Ok(Expr::Sym(name));
        }
        self.call(&name)
    }

    /// The arguments of a sympy constructor, `Head(a, b, key=value)`, after its `(`.
    fn call(&mut self, head: &str) -> Result<Expr, String> {
        let mut args = Vec::new();
        let mut text_arg = None;
        loop {
            self.ws();
            if self.eat(")") {
                break;
            }
            if !args.is_empty() || text_arg.is_some() {
                if !self.eat(",") {
                    return Err(self.err("expected `,` or `)`"));
                }
                self.ws();
                if self.eat(")") {
                    break;
                }
            }
            self.ws();
            match self.s.get(self.i) {
                Some(b'\'') | Some(b'"') => {
                    let q = self.s[self.i];
                    let start = self.i + 1;
                    let end = self.s[start..]
                        .iter()
                        .position(|c| *c == q)
                        .ok_or_else(|| self.err("unterminated string"))?;
                    text_arg =
                        Some(String::from_utf8_lossy(&self.s[start..start + end]).into_owned());
                    self.i = start + end + 1;
                }
                _ => {
                    // `key=True` assumptions are skipped; anything else is an argument.
                    let save = self.i;
                    while self
                        .s
                        .get(self.i)
                        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                    {
                        self.i += 1;
                    }
                    if self.i > save && self.s.get(self.i) == Some(&b'=') {
                        self.i += 1;
                        self.atom()?;
                    } else {
                        self.i = save;
                        args.push(self.infix()?);
                    }
                }
            }
        }
        let two = |mut args: Vec<Expr>, p: &Self| -> Result<(Box<Expr>, Box<Expr>), String> {
            if args.len() != 2 {
                return Err(p.err(&format!("{head} takes 2 arguments, got {}", args.len())));
            }
            let b = args.pop().map(Box::new);
            let a = args.pop().map(Box::new);
            a.zip(b).ok_or_else(|| p.err("missing arguments"))
        };
        Ok(match head {
            "Symbol" => Expr::Sym(text_arg.ok_or_else(|| self.err("Symbol without a name"))?),
            "Integer" => match args.as_slice() {
                [e] => Expr::Int(
                    e.eval(&HashMap::new())
                        .ok_or_else(|| self.err("Integer takes one integer"))?,
                ),
                _ => return Err(self.err("Integer takes one integer")),
            },
            "Add" => Expr::Add(args),
            "Mul" => Expr::Mul(args),
            "Max" => Expr::Max(args),
            "Min" => Expr::Min(args),
            "FloorDiv" | "CleanDiv" | "IntTrueDiv" => {
                let (a, b) = two(args, self)?;
                Expr::FloorDiv(a, b)
            }
            "Mod" | "PythonMod" => {
                let (a, b) = two(args, self)?;
                Expr::Mod(a, b)
            }
            "Pow" | "PowByNatural" => {
                let (a, b) = two(args, self)?;
                Expr::Pow(a, b)
            }
            other => {
                return Err(self.err(&format!(
                    "the sympy function {other} is not supported in sizes"
                )))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, i64)]) -> HashMap<String, i64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn parses_srepr_and_infix() {
        let e =
            Expr::parse("Mul(Integer(12), Symbol('s43', positive=True, integer=True))").unwrap();
        assert_eq!(e.eval(&env(&[("s43", 5)])), Some(60));
        let e = Expr::parse(
            "Add(FloorDiv(Symbol('s0', integer=True), Integer(2)), Mod(Symbol('s1'), Integer(3)), Integer(-1))",
        )
        .unwrap();
        assert_eq!(e.eval(&env(&[("s0", 7), ("s1", 8)])), Some(3 + 2 - 1));
        let e = Expr::parse("2*s0 + 1").unwrap();
        assert_eq!(e.eval(&env(&[("s0", 4)])), Some(9));
        assert_eq!(Expr::parse("s0").unwrap(), Expr::Sym("s0".into()));
        assert_eq!(
            Expr::parse("(s0//2) - 1").unwrap().eval(&env(&[("s0", 9)])),
            Some(3)
        );
        assert!(Expr::parse("sin(s0)").is_err());
        assert!(Expr::parse("Mul(Integer(2)").is_err());
    }

    #[test]
    fn python_floor_and_mod_semantics() {
        let e = Expr::parse("FloorDiv(Symbol('a'), Integer(2))").unwrap();
        assert_eq!(e.eval(&env(&[("a", -3)])), Some(-2));
        let e = Expr::parse("Mod(Symbol('a'), Integer(3))").unwrap();
        assert_eq!(e.eval(&env(&[("a", -1)])), Some(2));
        assert_eq!(Expr::parse("a // 0").unwrap().eval(&env(&[("a", 1)])), None);
    }

    #[test]
    fn solves_linear_sizes() {
        let e = Expr::parse("Mul(Integer(12), Symbol('s43'))").unwrap();
        assert_eq!(e.solve(60, &HashMap::new()), Some(("s43".into(), 5)));
        assert_eq!(e.solve(61, &HashMap::new()), None);
        let e = Expr::parse("2*s0 + 1").unwrap();
        assert_eq!(e.solve(9, &HashMap::new()), Some(("s0".into(), 4)));
        let e = Expr::parse("s0*s1").unwrap();
        assert_eq!(e.solve(6, &HashMap::new()), None);
        assert_eq!(e.solve(6, &env(&[("s1", 3)])), Some(("s0".into(), 2)));
    }
}
