module github.com/maftia/maftia

go 1.26
