//! One function per HTML tag (Twisted's `tags`): `tags::div()` is `Tag::new("div")`.
//!
//! ```
//! use torsion_web::template::{flatten, tags};
//!
//! let page = tags::ul().attr("class", "menu").children(
//!     ["home", "about"].map(|name| tags::li().child(tags::a().attr("href", format!("/{name}")).child(name))),
//! );
//! assert_eq!(
//!     flatten(page).result().unwrap().unwrap(),
//!     r#"<ul class="menu"><li><a href="/home">home</a></li><li><a href="/about">about</a></li></ul>"#
//! );
//! ```

use super::Tag;

/// A transparent tag (Twisted's `tags.transparent`): only its children are written; useful
/// to hang a renderer or slot values on.
pub fn transparent() -> Tag {
    Tag::new("")
}

macro_rules! html_tags {
    ($($f:ident => $name:literal),* $(,)?) => {$(
        #[doc = concat!("A `<", $name, ">` tag.")]
        pub fn $f() -> Tag {
            Tag::new($name)
        }
    )*};
}

html_tags! {
    a => "a",
    abbr => "abbr",
    address => "address",
    area => "area",
    article => "article",
    aside => "aside",
    audio => "audio",
    b => "b",
    base => "base",
    bdi => "bdi",
    bdo => "bdo",
    blockquote => "blockquote",
    body => "body",
    br => "br",
    button => "button",
    canvas => "canvas",
    caption => "caption",
    cite => "cite",
    code => "code",
    col => "col",
    colgroup => "colgroup",
    data => "data",
    datalist => "datalist",
    dd => "dd",
    del => "del",
    details => "details",
    dfn => "dfn",
    dialog => "dialog",
    div => "div",
    dl => "dl",
    dt => "dt",
    em => "em",
    embed => "embed",
    fieldset => "fieldset",
    figcaption => "figcaption",
    figure => "figure",
    footer => "footer",
    form => "form",
    h1 => "h1",
    h2 => "h2",
    h3 => "h3",
    h4 => "h4",
    h5 => "h5",
    h6 => "h6",
    head => "head",
    header => "header",
    hgroup => "hgroup",
    hr => "hr",
    html => "html",
    i => "i",
    iframe => "iframe",
    img => "img",
    input => "input",
    ins => "ins",
    kbd => "kbd",
    label => "label",
    legend => "legend",
    li => "li",
    link => "link",
    main_ => "main",
    map => "map",
    mark => "mark",
    menu => "menu",
    meta => "meta",
    meter => "meter",
    nav => "nav",
    noscript => "noscript",
    object => "object",
    ol => "ol",
    optgroup => "optgroup",
    option => "option",
    output => "output",
    p => "p",
    param => "param",
    picture => "picture",
    pre => "pre",
    progress => "progress",
    q => "q",
    rp => "rp",
    rt => "rt",
    ruby => "ruby",
    s => "s",
    samp => "samp",
    script => "script",
    section => "section",
    select => "select",
    small => "small",
    source => "source",
    span => "span",
    strong => "strong",
    style => "style",
    sub => "sub",
    summary => "summary",
    sup => "sup",
    table => "table",
    tbody => "tbody",
    td => "td",
    template => "template",
    textarea => "textarea",
    tfoot => "tfoot",
    th => "th",
    thead => "thead",
    time => "time",
    title => "title",
    tr => "tr",
    track => "track",
    u => "u",
    ul => "ul",
    var => "var",
    video => "video",
    wbr => "wbr",
}
